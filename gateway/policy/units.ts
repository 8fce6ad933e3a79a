// Durations and sizes as ops write them. Each parser either returns the value in the unit the
// gateway uses (milliseconds, bytes) or says what is wrong and which form is expected; the same
// wording serves the schema's pattern errors and the later checks, so a value is described once.

export type Parsed<T> = { ok: true; value: T } | { ok: false; why: string };

const DURATION_FORM =
  'a number and a unit with no space: ms, s, m, h or d (e.g. 500ms, 30s, 1.5m, 2h, 1d)';
const SIZE_FORM = 'a number and a unit with no space: b, kb, mb or gb (e.g. 512b, 64kb, 1mb)';

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1024,
  mb: 1024 ** 2,
  gb: 1024 ** 3,
};

const NUMBER_AND_UNIT = /^(\d+(?:\.\d+)?)([A-Za-z]+)$/;

interface UnitKind {
  noun: string;
  form: string;
  units: Record<string, number>;
  /** The unit of the result, which must come out whole. */
  grain: string;
  normalise: (text: string) => string;
}

const DURATION: UnitKind = {
  noun: 'duration',
  form: DURATION_FORM,
  units: DURATION_UNITS,
  grain: 'milliseconds',
  normalise: (text) => text,
};

const SIZE: UnitKind = {
  noun: 'size',
  form: SIZE_FORM,
  units: SIZE_UNITS,
  grain: 'bytes',
  normalise: (text) => text.toLowerCase(),
};

function parseAmount(raw: string, kind: UnitKind): Parsed<number> {
  const text = kind.normalise(raw.trim());
  const expected = `; expected ${kind.form}`;
  const fail = (why: string): Parsed<number> => ({ ok: false, why: why + expected });
  if (text === '') return fail(`is empty`);
  if (text.startsWith('-')) return fail(`is negative`);
  if (/^\d+(?:\.\d+)?$/.test(text)) return fail(`has no unit`);
  const spaced = /^(\d+(?:\.\d+)?)\s+([A-Za-z]+)$/.exec(text);
  if (spaced) {
    const unit = spaced[2]!;
    return unit in kind.units
      ? fail(`has a space between the number and the unit`)
      : fail(`uses \`${unit}\`, which is not a ${kind.noun} unit`);
  }
  if (/^(?:\d+(?:\.\d+)?[A-Za-z]+){2,}$/.test(text)) {
    return fail(`combines several units, which is not supported`);
  }
  const match = NUMBER_AND_UNIT.exec(text);
  if (!match) return fail(`is not a number followed by a unit`);
  const factor = kind.units[match[2]!];
  if (factor === undefined) {
    const hint = kind === DURATION && /^y(ears?)?$/i.test(match[2]!) ? ' (write 365d for a year)' : '';
    return fail(`uses \`${match[2]}\`, which is not a ${kind.noun} unit${hint}`);
  }
  const value = Number(match[1]) * factor;
  if (value === 0) return fail(`is zero, but a positive ${kind.noun} is required`);
  if (!Number.isInteger(value)) return fail(`is not a whole number of ${kind.grain}`);
  if (!Number.isSafeInteger(value)) return fail(`is too large`);
  return { ok: true, value };
}

/** `500ms`, `30s`, `1.5m`, `2h`, `1d` -> milliseconds; always positive. */
export function parseDuration(text: string): Parsed<number> {
  return parseAmount(text, DURATION);
}

/** `512b`, `64kb`, `1mb`, `1gb` (any case, 1kb = 1024 bytes) -> bytes; always positive. */
export function parseSize(text: string): Parsed<number> {
  return parseAmount(text, SIZE);
}

/**
 * A duration for an HTTP header counted in seconds (HSTS and CORS `max_age`) -> whole seconds.
 * `0` with a unit (`0s`) is accepted: it means "forget", which the caller may warn about.
 */
export function parseSeconds(text: string): Parsed<number> {
  if (/^0+(\.0+)?(ms|s|m|h|d)$/.test(text.trim())) return { ok: true, value: 0 };
  const parsed = parseDuration(text);
  if (!parsed.ok) return parsed;
  if (parsed.value % 1000 !== 0) return { ok: false, why: 'is not a whole number of seconds, the unit browsers count this header in; expected e.g. 2s, 10m or 365d' };
  return { ok: true, value: parsed.value / 1000 };
}

/** Node fires a timer set beyond this at once (with a warning), so a longer timeout is refused. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
