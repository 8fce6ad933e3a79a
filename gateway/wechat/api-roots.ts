// First path segments of WeChat's server APIs (api.weixin.qq.com). The egress never reads one as
// an app prefix, and a segment before one of them that names no app is an unknown app.
export const API_ROOTS: ReadonlySet<string> = new Set(['cgi-bin', 'sns', 'wxa', 'wxaapi', 'datacube', 'card', 'merchant', 'shop', 'product', 'channels', 'tcb', 'customservice', 'semantic', 'union', 'intp', 'wxopen', 'express', 'mall', 'component']);
