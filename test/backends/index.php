<?php
// A hand-written legacy PHP app, run by PHP's built-in server as its router script
// (`php -S 127.0.0.1:PORT index.php`). It reads everything from $_SERVER as PHP hands it over
// (CGI-style names: `X-WX-OpenID` and `X_WX_OpenID` both become HTTP_X_WX_OPENID), acts on client
// claims the way common PHP apps do, logs what it understood to BACKEND_LOG, then answers it.

function server_var(string $header): ?string
{
    $key = 'HTTP_' . strtoupper(str_replace('-', '_', $header));
    return isset($_SERVER[$key]) ? (string) $_SERVER[$key] : null;
}

$claims = [];
foreach (json_decode(file_get_contents(__DIR__ . '/claims.json'), true) as $name) {
    $claims[$name] = server_var($name);
}

// The usual getClientIp(): the first claim header present, its first entry, else the peer.
$clientIp = $_SERVER['REMOTE_ADDR'];
foreach (['client-ip', 'true-client-ip', 'cf-connecting-ip', 'x-client-ip', 'x-cluster-client-ip', 'x-real-ip',
          'x-original-forwarded-for', 'x-forwarded-for', 'x-forwarded', 'forwarded-for'] as $name) {
    $v = server_var($name);
    if ($v !== null && $v !== '') {
        $clientIp = trim(explode(',', $v)[0]);
        break;
    }
}

$rawMethod = $_SERVER['REQUEST_METHOD'];
$method = $rawMethod;
$override = server_var('x-http-method-override') ?? server_var('x-http-method') ?? server_var('x-method-override');
if ($rawMethod === 'POST' && $override !== null) $method = strtoupper($override);

// IIS-style rewrites, as Zend and older Symfony read them: the URL the app routes on.
$uri = server_var('x-original-url') ?? server_var('x-rewrite-url') ?? $_SERVER['REQUEST_URI'];
$path = (string) parse_url($uri, PHP_URL_PATH);

$host = server_var('x-original-host') ?? server_var('x-host') ?? server_var('x-forwarded-host') ?? server_var('host');
$scheme = server_var('x-forwarded-scheme') ?? server_var('x-forwarded-proto');

$route = 'fallback';
if ($path === '/api/internal' || str_starts_with($path, '/api/internal/')) $route = 'internal';
elseif ($path === '/api/me' || str_starts_with($path, '/api/me/')) $route = 'me';
elseif ($path === '/wx/callback') $route = 'callback';
elseif ($path === '/reports' || str_starts_with($path, '/reports/')) $route = 'reports';
elseif (str_starts_with($path, '/mask/')) $route = 'mask';
elseif (str_starts_with($path, '/api/')) $route = 'api';

$headers = [];
foreach ($_SERVER as $k => $v) {
    if (str_starts_with($k, 'HTTP_')) $headers[$k] = (string) $v;
}

$report = [
    'server' => 'php',
    'route' => $route,
    'method' => $method,
    'raw_method' => $rawMethod,
    'path' => $path,
    'request_uri' => $_SERVER['REQUEST_URI'],
    'openid' => server_var('x-wx-openid'),
    'callback_verified' => server_var('x-wx-callback-verified'),
    'client_ip' => $clientIp,
    'host' => $host,
    'forwarded_host' => server_var('x-forwarded-host'),
    'scheme' => $scheme,
    'claims' => $claims,
    'headers' => $headers,
    'body' => file_get_contents('php://input'),
];
file_put_contents(getenv('BACKEND_LOG'), json_encode($report, JSON_UNESCAPED_SLASHES) . "\n", FILE_APPEND | LOCK_EX);

if ($route === 'mask') {
    $kind = substr($path, strlen('/mask/'));
    $personal = file_get_contents(__DIR__ . '/personal.json');
    switch ($kind) {
        case 'html': // PHP's default Content-Type: text/html; charset=UTF-8
            echo $personal;
            break;
        case 'plain':
            header('Content-Type: text/plain');
            echo $personal;
            break;
        case 'text-json':
            header('Content-Type: text/json');
            echo $personal;
            break;
        case 'x-json':
            header('Content-Type: application/x-json');
            echo $personal;
            break;
        case 'problem-json':
            header('Content-Type: application/problem+json');
            echo $personal;
            break;
        case 'javascript':
            header('Content-Type: application/javascript');
            echo $personal;
            break;
        case 'json':
            header('Content-Type: application/json');
            echo $personal;
            break;
        case 'none':
            ini_set('default_mimetype', '');
            header_remove('Content-Type');
            echo $personal;
            break;
        case 'text':
            header('Content-Type: text/plain');
            echo "Call Mei at 13812345678 after six.\n";
            break;
        case 'hello':
            header('Content-Type: text/plain');
            echo "hello world\n";
            break;
        case 'cookie':
            header('Content-Type: application/json');
            header('Set-Cookie: session_key=SK-COOKIE-SECRET; Path=/; HttpOnly', false);
            header('Set-Cookie: theme=dark; Path=/', false);
            header('X-User-Phone: 13812345678');
            header('X-Phone: 13812345678');
            echo '{"ok":true}';
            break;
        default:
            http_response_code(404);
            header('Content-Type: application/json');
            echo '{"error":"no such kind"}';
    }
    return true;
}

header('Content-Type: application/json');
echo json_encode($report, JSON_UNESCAPED_SLASHES);
return true;
