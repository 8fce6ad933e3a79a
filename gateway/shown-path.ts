// How a file is named to the person reading a message: relative to the working directory when
// the file is below it, absolute otherwise (a path climbing out with `../..` reads worse).
import path from 'node:path';

export function shownPath(abs: string): string {
  const rel = path.relative(process.cwd(), abs);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : abs;
}
