"""A legacy WSGI app behind the gateway.

Served by Debian's gunicorn (`gunicorn --chdir test/backends wsgi_app:app`) or by the standard
library (`python3 wsgi_app.py PORT`, wsgiref.simple_server). It reads the request from the WSGI
environ as the server hands it over (CGI-style names: `X-WX-OpenID` and `X_WX_OpenID` both become
HTTP_X_WX_OPENID), acts on client claims the way common apps do, logs what it understood to
BACKEND_LOG (one JSON line per request), then answers it.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, 'claims.json'), encoding='utf-8') as f:
    CLAIMS = json.load(f)
with open(os.path.join(HERE, 'personal.json'), 'rb') as f:
    PERSONAL = f.read().strip()

CLIENT_IP_HEADERS = ['client-ip', 'true-client-ip', 'cf-connecting-ip', 'x-client-ip', 'x-cluster-client-ip',
                     'x-real-ip', 'x-original-forwarded-for', 'x-forwarded-for', 'x-forwarded', 'forwarded-for']

# kind -> (Content-Type headers, body): the ways legacy backends label JSON.
MASK_ANSWERS = {
    'html': ([('Content-Type', 'text/html; charset=UTF-8')], PERSONAL),
    'plain': ([('Content-Type', 'text/plain')], PERSONAL),
    'text-json': ([('Content-Type', 'text/json')], PERSONAL),
    'x-json': ([('Content-Type', 'application/x-json')], PERSONAL),
    'problem-json': ([('Content-Type', 'application/problem+json')], PERSONAL),
    'javascript': ([('Content-Type', 'application/javascript')], PERSONAL),
    'json': ([('Content-Type', 'application/json')], PERSONAL),
    'none': ([], PERSONAL),
    'empty': ([('Content-Type', '')], PERSONAL),
    'dup': ([('Content-Type', 'text/html'), ('Content-Type', 'application/json')], PERSONAL),
    'text': ([('Content-Type', 'text/plain')], b'Call Mei at 13812345678 after six.\n'),
    'hello': ([('Content-Type', 'text/plain')], b'hello world\n'),
    'cookie': ([('Content-Type', 'application/json'),
                ('Set-Cookie', 'session_key=SK-COOKIE-SECRET; Path=/; HttpOnly'),
                ('Set-Cookie', 'theme=dark; Path=/'),
                ('X-User-Phone', '13812345678'),
                ('X-Phone', '13812345678')], b'{"ok":true}'),
}


def header(environ, name):
    """A request header the way WSGI apps read it: HTTP_ + upper case, `-` as `_`."""
    return environ.get('HTTP_' + name.upper().replace('-', '_'))


def route_of(path):
    if path == '/api/internal' or path.startswith('/api/internal/'):
        return 'internal'
    if path == '/api/me' or path.startswith('/api/me/'):
        return 'me'
    if path == '/wx/callback':
        return 'callback'
    if path == '/reports' or path.startswith('/reports/'):
        return 'reports'
    if path.startswith('/mask/'):
        return 'mask'
    if path.startswith('/api/'):
        return 'api'
    return 'fallback'


def app(environ, start_response):
    raw_method = environ['REQUEST_METHOD']
    method = raw_method
    override = header(environ, 'x-http-method-override') or header(environ, 'x-http-method') or header(environ, 'x-method-override')
    if raw_method == 'POST' and override:
        method = override.upper()

    client_ip = environ.get('REMOTE_ADDR', '')
    for name in CLIENT_IP_HEADERS:
        value = header(environ, name)
        if value:
            client_ip = value.split(',')[0].strip()
            break

    # IIS-style rewrites, as many frameworks honour them: the path the app routes on.
    url = header(environ, 'x-original-url') or header(environ, 'x-rewrite-url')
    path = url.split('?', 1)[0] if url else environ.get('PATH_INFO', '')
    route = route_of(path)

    length = int(environ.get('CONTENT_LENGTH') or 0)
    body = environ['wsgi.input'].read(length) if length > 0 else b''

    report = {
        'server': environ.get('SERVER_SOFTWARE', ''),
        'route': route,
        'method': method,
        'raw_method': raw_method,
        'path': path,
        'request_uri': environ.get('RAW_URI') or environ.get('REQUEST_URI') or environ.get('PATH_INFO', ''),
        'openid': header(environ, 'x-wx-openid'),
        'callback_verified': header(environ, 'x-wx-callback-verified'),
        'client_ip': client_ip,
        'host': header(environ, 'x-original-host') or header(environ, 'x-host') or header(environ, 'x-forwarded-host') or header(environ, 'host'),
        'forwarded_host': header(environ, 'x-forwarded-host'),
        'scheme': header(environ, 'x-forwarded-scheme') or header(environ, 'x-forwarded-proto'),
        'claims': {name: header(environ, name) for name in CLAIMS},
        'headers': {k: v for k, v in environ.items() if k.startswith('HTTP_')},
        'body': body.decode('utf-8', 'replace'),
    }
    with open(os.environ['BACKEND_LOG'], 'a', encoding='utf-8') as log:
        log.write(json.dumps(report) + '\n')

    if route == 'mask':
        kind = path[len('/mask/'):]
        if kind not in MASK_ANSWERS:
            headers, payload, status = [('Content-Type', 'application/json')], b'{"error":"no such kind"}', '404 Not Found'
        else:
            (headers, payload), status = MASK_ANSWERS[kind], '200 OK'
    else:
        headers, payload, status = [('Content-Type', 'application/json')], json.dumps(report).encode('utf-8'), '200 OK'
    start_response(status, headers + [('Content-Length', str(len(payload)))])
    # Like werkzeug and Django: HEAD runs the GET handler and keeps its Content-Length, no body.
    return [b''] if raw_method == 'HEAD' else [payload]


if __name__ == '__main__':
    from wsgiref.simple_server import make_server

    server = make_server('127.0.0.1', int(sys.argv[1]), app)
    print('listening', server.server_port, flush=True)
    server.serve_forever()
