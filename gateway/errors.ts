// Every reason the gateway itself can answer with. The reason string is the stable,
// machine-readable contract; the message is for people and may change.

export const REASONS = {
  route_not_found: { status: 404, message: 'no route of the policy matches this request' },
  ip_not_allowed: { status: 403, message: 'the policy does not allow this client address to call this route' },
  cors_origin_not_allowed: { status: 403, message: 'the policy does not allow cross-origin requests from this Origin to this route' },
  method_not_allowed: { status: 405, message: 'the route matching this path does not allow this method' },
  path_invalid: { status: 400, message: 'the request path cannot be normalised safely' },
  host_invalid: { status: 400, message: 'the Host header is not a valid host name or address' },
  bad_request: { status: 400, message: 'the request is malformed' },
  body_too_large: { status: 413, message: 'the request body is larger than the policy allows' },
  headers_too_large: { status: 431, message: 'the request headers are larger than the gateway accepts' },
  header_invalid: { status: 400, message: 'a request header name is refused: names of letters, digits and "-" only' },
  request_timeout: { status: 408, message: 'the request was not received completely in time' },
  upstream_unavailable: { status: 502, message: 'the upstream refused or dropped the connection' },
  upstream_timeout: { status: 504, message: 'the upstream did not answer in time' },
  upstream_busy: { status: 503, message: 'every connection to the upstream stayed busy for longer than its queue_timeout; retry later' },
  upstream_down: { status: 503, message: 'every target of the upstream is down (ejected after connection failures or failing health checks); retry later' },
  upstream_tls_failed: { status: 502, message: 'the TLS connection to the upstream failed: its certificate was not trusted or not pinned, or it refused the gateway\'s client certificate' },
  https_required: { status: 400, message: 'this listener only redirects to HTTPS' },
  client_closed: { status: 499, message: 'the client closed the connection before the upstream answered' },
  internal_error: { status: 500, message: 'the gateway failed to handle the request' },
  rate_limited: { status: 429, message: 'too many requests for this client; retry after the time given' },
  store_unavailable: { status: 503, message: 'the gateway cannot reach its state store to apply the policy' },
  identity_required: { status: 401, message: 'this route needs a verified identity: send the session token' },
  token_invalid: { status: 401, message: 'the identity token is malformed, wrongly signed or not for this gateway' },
  token_expired: { status: 401, message: 'the identity token has expired: log in again' },
  login_invalid: { status: 400, message: 'the login request must be a JSON object with a string "code"' },
  wx_code_invalid: { status: 400, message: 'WeChat rejected the login code: call wx.login() again' },
  wx_code_used: { status: 400, message: 'this login code was already exchanged: call wx.login() again' },
  wx_rate_limited: { status: 429, message: 'WeChat is limiting login calls for this account; retry later' },
  wx_unavailable: { status: 503, message: 'WeChat is busy or refused the login; retry later' },
  wx_error: { status: 502, message: 'WeChat answered the login with an error' },
  wx_timeout: { status: 504, message: 'WeChat did not answer the login in time' },
  wx_quota: { status: 429, message: "this WeChat API's daily budget (wechat.quotas) is used up until 00:00 Beijing time; calling it would earn errcode 45009" },
  wx_circuit_open: { status: 503, message: 'calls to this WeChat API are paused after WeChat answered busy, over quota or not at all; retry after the time given' },
  wx_app_unknown: { status: 400, message: 'the X-WX-App header or the path prefix names no app of this egress: use a wechat.apps name or an appid' },
  wx_token_unavailable: { status: 503, message: 'wxgw has no valid access_token to call WeChat with right now; retry later' },
  phone_invalid: { status: 400, message: 'the phone request must be a JSON object with a string "code" from getPhoneNumber' },
  phone_code_invalid: { status: 400, message: 'WeChat rejected the phone number code: ask the user to tap the phone button again' },
  mask_failed: { status: 502, message: 'the upstream answer could not be masked as the policy requires' },
  wechatpay_answer_unverified: { status: 502, message: 'WeChat Pay answered, but its answer did not verify (signature, platform key serial or timestamp), so it is not passed on' },
  wechatpay_unavailable: { status: 502, message: 'the gateway could not reach WeChat Pay' },
  wechatpay_timeout: { status: 504, message: 'WeChat Pay did not answer in time' },
  signature_invalid: { status: 403, message: 'the callback signature does not verify' },
  timestamp_stale: { status: 403, message: 'the callback timestamp is outside the allowed clock skew' },
  nonce_replayed: { status: 403, message: 'this callback nonce was already used' },
  callback_in_flight: { status: 503, message: 'an earlier delivery of this callback is still in flight; retry, and its answer is given' },
  appid_mismatch: { status: 403, message: 'the callback was encrypted for another appid' },
  callback_malformed: { status: 400, message: 'the callback body or parameters are malformed' },
  serial_unknown: { status: 401, message: 'the notification is signed with a key this gateway does not know' },
  decrypt_failed: { status: 400, message: 'the callback could not be decrypted' },
  websocket_not_allowed: { status: 400, message: 'this route does not take WebSocket upgrades' },
  websocket_origin_not_allowed: { status: 403, message: 'the policy does not allow WebSocket connections from this Origin to this route' },
  shutting_down: { status: 503, message: 'the gateway is shutting down; retry, and another instance will answer' },
  websocket_limit: { status: 503, message: 'this route has as many WebSocket connections open as the policy allows; retry later' },
  session_revoked: { status: 401, message: 'this session was ended by a logout: log in again' },
  session_unknown: { status: 401, message: 'the gateway holds no WeChat session for this token (expired, ended, or not a wxgw login): log in again' },
  decrypt_invalid: { status: 400, message: 'the request must be a JSON object with string "encryptedData" and "iv" (and optionally "rawData" with "signature")' },
  watermark_mismatch: { status: 403, message: 'the decrypted data was made for another mini-program (watermark.appid)' },
  watermark_stale: { status: 403, message: 'the decrypted data is older than the policy accepts (watermark.timestamp): ask WeChat for it again' },
  wx_user_blocked: {
    status: 403,
    message: 'WeChat has restricted this WeChat account as high risk and refuses to log it in (errcode 40226). Open WeChat, complete its security check, then try again.',
  },
} as const satisfies Record<string, { status: number; message: string }>;

export type Reason = keyof typeof REASONS;

/** The JSON body of every error the gateway produces itself. */
export function errorBody(reason: Reason, requestId: string, message?: string): string {
  return JSON.stringify({
    error: { reason, message: message ?? REASONS[reason].message, request_id: requestId },
  });
}

/** An error that carries its reason through async code to the reply. */
export class GatewayError extends Error {
  readonly reason: Reason;
  constructor(reason: Reason, message?: string, options?: { cause?: unknown }) {
    super(message ?? REASONS[reason].message, options);
    this.name = 'GatewayError';
    this.reason = reason;
  }
}
