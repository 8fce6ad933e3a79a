// Every reason the gateway itself can answer with. The reason string is the stable,
// machine-readable contract; the message is for people and may change.

export const REASONS = {
  route_not_found: { status: 404, message: 'no route of the policy matches this request' },
  ip_not_allowed: { status: 403, message: 'the policy does not allow this client address to call this route' },
  cors_origin_not_allowed: { status: 403, message: 'the policy does not allow cross-origin requests from this Origin to this route' },
  method_not_allowed: { status: 405, message: 'the route matching this path does not allow this method' },
  path_invalid: { status: 400, message: 'the request path cannot be normalised safely' },
  bad_request: { status: 400, message: 'the request is malformed' },
  body_too_large: { status: 413, message: 'the request body is larger than the policy allows' },
  headers_too_large: { status: 431, message: 'the request headers are larger than the gateway accepts' },
  request_timeout: { status: 408, message: 'the request was not received completely in time' },
  upstream_unavailable: { status: 502, message: 'the upstream refused or dropped the connection' },
  upstream_timeout: { status: 504, message: 'the upstream did not answer in time' },
  https_required: { status: 400, message: 'this listener only redirects to HTTPS' },
  client_closed: { status: 499, message: 'the client closed the connection before the upstream answered' },
  internal_error: { status: 500, message: 'the gateway failed to handle the request' },
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
