// The host name a request names in its Host header: lower case, without the port, IPv6
// literals kept in brackets.

export function hostOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const end = header.charCodeAt(0) === 91 /* [ */ ? header.indexOf(']') + 1 : header.indexOf(':');
  return (end > 0 ? header.slice(0, end) : header).toLowerCase();
}
