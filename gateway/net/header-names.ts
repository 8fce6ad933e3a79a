// Header names as a backend reads them. CGI-style servers (PHP-FPM and PHP's own server, WSGI
// servers, many Java, Perl and Ruby stacks) turn a header name into a variable such as
// HTTP_X_WX_OPENID: case goes, and `-`, `_` (and for PHP also `.`) become the same character. So
// `X-WX-OpenID`, `x_wx_openid` and `X.WX.OPENID` are one header to such a backend, and the
// gateway must treat them as one wherever it owns, removes or trusts a header.

/** Whether a lower-case header name has only letters, digits and `-`; anything else may fold. */
export function isPlainHeaderName(name: string): boolean {
  // Run on every header of every request: a loop over char codes, not a regular expression.
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (!((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45)) return false;
  }
  return true;
}

/** The one spelling every CGI-folded variant of `name` shares: lower case, `-` for any non-alphanumeric. */
export function foldHeaderName(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '-');
}

/** Set by the gateway on every forwarded request; a trusted proxy's X-Forwarded-For and X-Request-Id are built on. */
export const GATEWAY_FORWARDING: readonly string[] = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id'];

/**
 * What a client may claim about its connection but only a proxy in front of the gateway can
 * know: its address, the host, scheme, port and URL it asked for, and the method it "really"
 * used. Frameworks believe these (Rails and Rack, Symfony and Laravel, Spring, werkzeug's
 * ProxyFix, IIS's URL rewrite, the IP helpers copied into countless Java and PHP backends), so a
 * client's copy is removed unless the peer is a trusted proxy and `server.trusted_headers` names
 * it. Folded spellings; the gateway's own X-Forwarded-For, -Proto and -Host are not here (always
 * replaced). The CGI variable spellings (`HTTP_CLIENT_IP`, ...) are listed because Java helpers
 * ask for headers by those names.
 */
export const CLIENT_CLAIMS: readonly string[] = [
  // The client address.
  'forwarded', 'x-forwarded', 'forwarded-for', 'x-forwarded-by', 'x-real-ip', 'client-ip', 'true-client-ip', 'x-client-ip',
  'cf-connecting-ip', 'cf-connecting-ipv6', 'cf-pseudo-ipv4', 'fastly-client-ip', 'x-cluster-client-ip', 'x-original-forwarded-for',
  'x-proxyuser-ip', 'proxy-client-ip', 'wl-proxy-client-ip', 'x-originating-ip', 'x-remote-ip', 'x-remote-addr', 'remote-addr',
  'x-envoy-external-address', 'x-azure-clientip', 'x-azure-socketip', 'x-arr-clientip', 'x-appengine-user-ip', 'cdn-src-ip',
  'ali-cdn-real-ip', 'http-client-ip', 'http-x-forwarded-for', 'http-x-forwarded', 'http-x-cluster-client-ip', 'http-forwarded-for',
  'http-forwarded', 'http-x-real-ip', 'http-via',
  // The host it asked for.
  'x-host', 'x-original-host', 'x-forwarded-server', 'x-http-host-override',
  // Scheme, port and TLS.
  'x-forwarded-scheme', 'x-forwarded-ssl', 'x-forwarded-protocol', 'x-url-scheme', 'x-scheme', 'front-end-https', 'x-forwarded-port',
  'x-arr-ssl', 'x-forwarded-client-cert', 'x-client-cert', 'x-client-verify', 'x-ssl-client-cert', 'x-ssl-client-verify',
  'ssl-client-cert', 'ssl-client-verify',
  // The URL it asked for.
  'x-original-url', 'x-rewrite-url', 'x-original-uri', 'x-forwarded-uri', 'x-forwarded-path', 'x-forwarded-prefix', 'x-envoy-original-path',
  'x-script-name', 'x-request-uri',
  // The method it used.
  'x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-method', 'x-forwarded-method',
];
