// The byte-level JSON rewriter behind both maskJsonBuffer() and createMaskStream(). It validates
// the JSON as it goes and copies the input through verbatim except where a rule applies, so
// numbers keep their exact text (a 19-digit id survives, which JSON.parse would round), every
// duplicate key is masked on its own, and a body needs no more memory than its largest masked
// value. Undecided bytes (a member whose key is still being read, a string a detector may still
// match) are held back, never emitted, until the decision is made.
import type { PartialRule } from '../types/policy.js';
import type { CompiledMask, MaskAction, PathNode } from './compile.js';
import { resolveEntry } from './compile.js';
import { detect, detectInText } from './detectors.js';
import { isNameSeparator } from './names.js';
import { applyAction } from './values.js';

/** Why a body could not be masked. `why` never quotes the body. */
export class MaskError extends Error {
  readonly why: string;
  constructor(why: string) {
    super(`response cannot be masked: ${why}`);
    this.name = 'MaskError';
    this.why = why;
  }
}

/**
 * A string or number under a partial or hash rule, and a string the detectors search, is held
 * whole; past this size the body is refused rather than letting one value grow memory without
 * bound (or passing a string nobody searched).
 */
export const MASKED_VALUE_CAP = 8 * 1024 * 1024;
/**
 * Held bytes are bounded by the key and detector caps, except whitespace between a comma and the
 * next key, which has to be held with the comma; past this much the body is refused.
 */
const HOLD_CAP = 1024 * 1024;
/** Shortest text any detector matches (`a@b.cd`, six digits): shorter numbers are not examined. */
const DETECT_MIN = 6;

const S_VALUE = 0;
const S_ARR_FIRST = 1;
const S_OBJ_FIRST = 2;
const S_OBJ_KEY = 3;
const S_COLON = 4;
const S_AFTER = 5;
const S_STRING = 6;
const S_ESC = 7;
const S_HEX = 8;
const S_NUMBER = 9;
const S_LITERAL = 10;
const S_DONE = 11;
const S_BOM = 12;

// Number grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?
const N_MINUS = 0;
const N_ZERO = 1;
const N_INT = 2;
const N_DOT = 3;
const N_FRAC = 4;
const N_E = 5;
const N_ESIGN = 6;
const N_EXP = 7;

const R_NONE = 0;
const R_DROP = 1;
const R_MASK = 2;
const R_DETECT = 3;

const C_NONE = 0;
const C_KEY = 1;
const C_VALUE = 2;

const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const NULL = Buffer.from('null');
const EMPTY_NODES: PathNode[] = [];
const NO_OUTPUT = Buffer.alloc(0);

interface Frame {
  isObj: boolean;
  /** Nothing below can match: no key decoding, no holding, plain validation. */
  inert: boolean;
  /** Object members need their keys read (key rules or path nodes apply). */
  keyed: boolean;
  /** Whether any entry has been emitted: a comma after only dropped entries is cut. */
  emitted: boolean;
  nodes: PathNode[];
  /** Arrays: every element shares one action and one set of path nodes. */
  elemAction: MaskAction | undefined;
  elemNodes: PathNode[];
}

function isWs(b: number): boolean {
  return b <= 0x20 && (b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09);
}

function isHex(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || ((b | 0x20) >= 0x61 && (b | 0x20) <= 0x66);
}

function decodeString(raw: Buffer, escaped: boolean): string {
  // The rewriter has already validated the escapes, so JSON.parse cannot throw here.
  return escaped ? (JSON.parse(`"${raw.toString('utf8')}"`) as string) : raw.toString('utf8');
}

/** Where the string run from `i` stops: at a quote, a backslash, a control character or `n`. */
function stringStop(buf: Buffer, i: number, n: number): number {
  // Letters and UTF-8 continuation bytes, most of any text, are past `\` and cost one test.
  for (let j = i; j < n; j++) {
    const c = buf[j]!;
    if (c <= 0x5c && (c === 0x22 || c === 0x5c || c < 0x20)) return j;
  }
  return n;
}

/**
 * Whether an unescaped string may hold something a detector matches: every match has a digit or
 * an `@`. Keeps most strings from being decoded.
 */
function mayBeDetected(buf: Buffer, start: number, end: number): boolean {
  if (end - start < DETECT_MIN) return false;
  for (let k = start; k < end; k++) {
    const c = buf[k]!;
    if ((c >= 0x30 && c <= 0x39) || c === 0x40) return true;
  }
  return false;
}

export class Rewriter {
  private readonly mask: CompiledMask;
  private readonly rootNodes: PathNode[];
  private readonly quiet: boolean;
  /** Room for a key folded byte by byte (compile.ts: maxRawKeyBytes). */
  private readonly folded: Buffer;

  /** True once any byte of output differs from the input. */
  changed = false;
  private seen = 0;
  private st = S_VALUE;
  private readonly stack: Frame[] = [];

  private chunk: Buffer = NO_OUTPUT;
  private copyFrom = 0;
  // This write's output, copied into one buffer as it is decided: a Buffer per kept stretch and
  // a concat per chunk cost more than the copying on records dense with masked fields.
  private ob: Buffer = NO_OUTPUT;
  private olen = 0;

  // The undecided or suppressed stretch of input: from markPos (-1: it began in an earlier
  // chunk) on, held back (markHold) or thrown away.
  private markActive = false;
  private markPos = 0;
  private markHold = false;
  private held: Buffer[] = [];
  private heldBytes = 0;

  private region = R_NONE;
  private regionDepth = 0;
  private regionAction: MaskAction | undefined;
  private regionText: string | undefined;
  /** The detected value is a number: detectors look at it whole, and it becomes a string. */
  private regionNumber = false;
  // A masked string without escapes, or a number, that lies whole in this chunk is left there
  // (chunk[rawStart, rawEnd)) and decoded only if its rule needs text: -1 when it is not.
  private rawStart = -1;
  private rawEnd = 0;

  private pendingAction: MaskAction | undefined;
  private pendingNodes: PathNode[] = EMPTY_NODES;

  private strIsKey = false;
  private strEscaped = false;
  private hexLeft = 0;
  private collect = C_NONE;
  private collectStart = 0;
  private collectParts: Buffer[] = [];
  private collectBytes = 0;

  private numState = N_MINUS;
  private literal: Buffer = NULL;
  private litIdx = 0;
  private bomIdx = 0;

  constructor(mask: CompiledMask) {
    this.mask = mask;
    this.rootNodes = mask.pathRoot ? [mask.pathRoot] : EMPTY_NODES;
    this.quiet = mask.keyRules.size === 0 && mask.detectors.length === 0;
    this.folded = mask.folds ? Buffer.alloc(mask.maxRawKeyBytes) : NO_OUTPUT;
  }

  /** Masks the next piece of input and returns the output it allows to be released. */
  write(buf: Buffer): Buffer {
    this.chunk = buf;
    this.copyFrom = 0;
    const n = buf.length;
    let i = 0;
    if (this.seen === 0 && n > 0 && buf[0] === 0xef) {
      this.st = S_BOM;
      this.setMark(0, false);
    }
    this.seen += n;
    while (i < n) {
      const b = buf[i]!;
      switch (this.st) {
        case S_VALUE:
          if (isWs(b)) i++;
          else i = this.startValue(i, b);
          break;
        case S_ARR_FIRST:
          if (isWs(b)) i++;
          else if (b === 0x5d) i = this.close(i, false);
          else i = this.startValue(i, b);
          break;
        case S_OBJ_FIRST:
        case S_OBJ_KEY:
          if (isWs(b)) i++;
          else if (b === 0x22) i = this.startKey(i);
          else if (b === 0x7d && this.st === S_OBJ_FIRST) i = this.close(i, true);
          else throw this.syntax(i, 'expected a member name');
          break;
        case S_COLON:
          if (isWs(b)) i++;
          else if (b === 0x3a) {
            this.st = S_VALUE;
            i++;
          } else throw this.syntax(i, 'expected `:`');
          break;
        case S_AFTER: {
          if (isWs(b)) {
            i++;
            break;
          }
          const top = this.stack[this.stack.length - 1]!;
          if (b === 0x2c) {
            this.comma(top, i);
            this.st = top.isObj ? S_OBJ_KEY : S_VALUE;
            i++;
          } else if (b === (top.isObj ? 0x7d : 0x5d)) {
            i = this.close(i, top.isObj);
          } else throw this.syntax(i, 'expected `,` or the end of the container');
          break;
        }
        case S_STRING: {
          const j = stringStop(buf, i, n);
          const c = j < n ? buf[j]! : 0;
          if (j === n) {
            i = n;
          } else if (c === 0x22) {
            i = this.endString(j);
          } else if (c === 0x5c) {
            this.strEscaped = true;
            this.st = S_ESC;
            i = j + 1;
          } else throw this.syntax(j, 'control character in a string');
          if (this.collect !== C_NONE) this.checkCap(i);
          break;
        }
        case S_ESC:
          if (b === 0x75) {
            this.st = S_HEX;
            this.hexLeft = 4;
          } else if (b === 0x22 || b === 0x5c || b === 0x2f || b === 0x62 || b === 0x66 || b === 0x6e || b === 0x72 || b === 0x74) {
            this.st = S_STRING;
          } else throw this.syntax(i, 'invalid escape in a string');
          i++;
          break;
        case S_HEX:
          if (!isHex(b)) throw this.syntax(i, 'invalid \\u escape in a string');
          if (--this.hexLeft === 0) this.st = S_STRING;
          i++;
          break;
        case S_NUMBER: {
          const ns = this.numState;
          if (ns === N_INT || ns === N_FRAC || ns === N_EXP) {
            let j = i;
            while (j < n && buf[j]! >= 0x30 && buf[j]! <= 0x39) j++;
            i = j < n ? this.number(j, buf[j]!) : n;
          } else i = this.number(i, b);
          break;
        }
        case S_LITERAL:
          if (b !== this.literal[this.litIdx]) throw this.syntax(i, 'invalid literal');
          i++;
          if (++this.litIdx === this.literal.length) this.valueDone(i);
          break;
        case S_DONE:
          if (!isWs(b)) throw this.syntax(i, 'data after the JSON value');
          i++;
          break;
        case S_BOM:
          if (b !== (this.bomIdx === 0 ? 0xef : this.bomIdx === 1 ? 0xbb : 0xbf)) throw this.syntax(i, 'invalid byte order mark');
          i++;
          if (++this.bomIdx === 3) {
            this.discardMark(i);
            this.changed = true;
            this.st = S_VALUE;
          }
          break;
      }
    }
    return this.flushChunk();
  }

  /** Ends the input; throws when the JSON is incomplete. An empty body is passed as empty. */
  end(): Buffer {
    this.chunk = NO_OUTPUT;
    this.copyFrom = 0;
    if (this.st === S_NUMBER && this.stack.length === 0) {
      if (!this.numberComplete()) throw this.syntax(0, 'incomplete number');
      this.endNumber(0);
    }
    if (this.st !== S_DONE && this.seen > 0) throw new MaskError(`invalid JSON: the body ends before the JSON value does (${this.seen} bytes)`);
    return this.flushChunk();
  }

  private syntax(i: number, what: string): MaskError {
    const at = this.seen - this.chunk.length + i;
    return new MaskError(`invalid JSON at byte ${at}: ${what}`);
  }

  // ---- output ---------------------------------------------------------------------------

  private emitUpTo(pos: number): void {
    if (pos > this.copyFrom) this.put(this.chunk, this.copyFrom, pos);
    this.copyFrom = pos;
  }

  private reserve(bytes: number): void {
    if (this.olen + bytes <= this.ob.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.ob.length * 2, this.olen + bytes, this.chunk.length + this.heldBytes + 64));
    grown.set(new Uint8Array(this.ob.buffer, this.ob.byteOffset, this.olen));
    this.ob = grown;
  }

  private put(src: Buffer, from: number, to: number): void {
    const len = to - from;
    this.reserve(len);
    // Most kept stretches between masked fields are a few dozen bytes, where a loop beats
    // making a view to copy from (which Buffer.copy also does, after argument checks).
    if (len < 48) {
      const ob = this.ob;
      let o = this.olen;
      for (let k = from; k < to; k++) ob[o++] = src[k]!;
    } else this.ob.set(new Uint8Array(src.buffer, src.byteOffset + from, len), this.olen);
    this.olen += len;
  }

  private putString(s: string): void {
    const json = JSON.stringify(s);
    this.reserve(json.length * 3);
    this.olen += this.ob.write(json, this.olen);
  }

  private setMark(pos: number, hold: boolean): void {
    this.markActive = true;
    this.markPos = pos;
    this.markHold = hold;
  }

  private releaseMark(): void {
    if (this.held.length > 0) {
      for (const h of this.held) this.put(h, 0, h.length);
      this.held = [];
      this.heldBytes = 0;
    }
    this.markActive = false;
  }

  /** Throws away the marked stretch; output resumes at `resume`. */
  private discardMark(resume: number): void {
    if (this.markPos >= 0) this.emitUpTo(this.markPos);
    if (this.held.length > 0) this.held = [];
    this.heldBytes = 0;
    this.markActive = false;
    this.copyFrom = resume;
  }

  private flushChunk(): Buffer {
    const buf = this.chunk;
    const n = buf.length;
    let to = n;
    if (this.markActive) {
      to = this.markPos >= 0 ? this.markPos : 0;
      // Copied, so a held key does not pin the whole chunk it came in.
      if (this.markHold && n > to) {
        this.held.push(Buffer.from(buf.subarray(to, n)));
        this.heldBytes += n - to;
        if (this.region === R_DETECT) {
          if (this.heldBytes > MASKED_VALUE_CAP) throw new MaskError(`a string for the detectors to search is larger than ${MASKED_VALUE_CAP} bytes`);
        } else if (this.heldBytes > HOLD_CAP) throw new MaskError(`more than ${HOLD_CAP} bytes of whitespace between members`);
      }
      this.markPos = -1;
    }
    if (this.collect !== C_NONE && n > this.collectStart) {
      this.collectParts.push(Buffer.from(buf.subarray(this.collectStart, n)));
      this.collectBytes += n - this.collectStart;
      if (this.collect === C_VALUE && this.st === S_NUMBER && this.collectBytes > MASKED_VALUE_CAP) {
        throw new MaskError(`a value under a masked key is larger than ${MASKED_VALUE_CAP} bytes`);
      }
    }
    this.collectStart = 0;
    let out: Buffer;
    if (this.olen === 0) {
      // Nothing was cut or replaced: the output is one stretch of the input, passed uncopied.
      out = to > this.copyFrom ? buf.subarray(this.copyFrom, to) : NO_OUTPUT;
    } else {
      this.emitUpTo(to);
      out = this.ob.subarray(0, this.olen);
      this.ob = NO_OUTPUT;
      this.olen = 0;
    }
    this.chunk = NO_OUTPUT;
    return out;
  }

  // ---- structure ------------------------------------------------------------------------

  private live(): boolean {
    const top = this.stack[this.stack.length - 1];
    return this.region === R_NONE && (top === undefined || !top.inert);
  }

  private startValue(i: number, b: number): number {
    const top = this.stack[this.stack.length - 1];
    let action: MaskAction | undefined;
    let nodes = EMPTY_NODES;
    if (this.live()) {
      if (top === undefined) {
        nodes = this.rootNodes;
      } else if (top.isObj) {
        action = this.pendingAction;
        nodes = this.pendingNodes;
        this.pendingAction = undefined;
        this.pendingNodes = EMPTY_NODES;
      } else {
        action = top.elemAction;
        nodes = top.elemNodes;
        if (action === undefined || action.kind !== 'drop') top.emitted = true;
      }
      if (action !== undefined) {
        this.emitUpTo(i);
        this.setMark(i, false);
        this.region = action.kind === 'drop' ? R_DROP : R_MASK;
        this.regionDepth = this.stack.length;
        this.regionAction = action;
        this.regionText = undefined;
        this.rawStart = -1;
      } else if ((b === 0x22 || (b >= 0x30 && b <= 0x39)) && this.mask.detectors.length > 0) {
        // Strings and numbers alike: a phone number is often written as a JSON number.
        this.setMark(i, true);
        this.region = R_DETECT;
        this.regionDepth = this.stack.length;
        this.regionText = undefined;
        this.regionNumber = b !== 0x22;
      }
    }
    switch (b) {
      case 0x22:
        this.st = S_STRING;
        this.strIsKey = false;
        this.strEscaped = false;
        if (this.region === R_DETECT || (this.region === R_MASK && this.stack.length === this.regionDepth)) {
          this.startCollect(C_VALUE, i + 1);
        }
        return i + 1;
      case 0x7b:
      case 0x5b:
        this.push(b === 0x7b, nodes);
        this.st = b === 0x7b ? S_OBJ_FIRST : S_ARR_FIRST;
        return i + 1;
      case 0x74:
      case 0x66:
      case 0x6e:
        this.literal = b === 0x74 ? TRUE : b === 0x66 ? FALSE : NULL;
        this.litIdx = 1;
        this.st = S_LITERAL;
        return i + 1;
      default:
        if (b === 0x2d || (b >= 0x30 && b <= 0x39)) {
          this.numState = b === 0x2d ? N_MINUS : b === 0x30 ? N_ZERO : N_INT;
          this.st = S_NUMBER;
          if ((this.region === R_MASK || this.region === R_DETECT) && this.stack.length === this.regionDepth) this.startCollect(C_VALUE, i);
          return i + 1;
        }
        throw this.syntax(i, 'expected a value');
    }
  }

  private push(isObj: boolean, nodes: PathNode[]): void {
    const inert = this.region !== R_NONE || (this.quiet && nodes.length === 0);
    const frame: Frame = {
      isObj,
      inert,
      keyed: !inert && isObj && (this.mask.keyRules.size > 0 || nodes.length > 0),
      emitted: false,
      nodes,
      elemAction: undefined,
      elemNodes: EMPTY_NODES,
    };
    if (!isObj && !inert && nodes.length > 0) {
      const r = resolveEntry(this.mask, nodes, undefined);
      frame.elemAction = r.action;
      frame.elemNodes = r.next;
    }
    this.stack.push(frame);
  }

  private close(i: number, isObj: boolean): number {
    const top = this.stack.pop()!;
    if (top.isObj !== isObj) throw this.syntax(i, 'mismatched bracket');
    this.valueDone(i + 1);
    return i + 1;
  }

  private comma(top: Frame, i: number): void {
    if (top.inert) return;
    if (!top.emitted && (top.keyed || top.elemAction?.kind === 'drop')) {
      // Everything before it was dropped: this comma would follow the opening bracket.
      this.emitUpTo(i);
      this.copyFrom = i + 1;
      this.changed = true;
    } else if (top.keyed) {
      this.setMark(i, true);
    }
  }

  private valueDone(end: number): void {
    this.st = this.stack.length === 0 ? S_DONE : S_AFTER;
    if (this.region === R_NONE || this.stack.length !== this.regionDepth) return;
    const region = this.region;
    this.region = R_NONE;
    if (region === R_DROP) {
      this.discardMark(end);
      this.changed = true;
      return;
    }
    if (region === R_MASK) {
      const action = this.regionAction as Exclude<MaskAction, { kind: 'drop' }>;
      this.discardMark(end);
      this.changed = true;
      if (action.kind === 'replace') this.put(action.json, 0, action.json.length);
      else if (action.kind !== 'partial' || !this.putPartial(action)) {
        const text = this.rawStart >= 0 ? this.chunk.toString('utf8', this.rawStart, this.rawEnd) : this.regionText;
        this.putString(applyAction(action, text, this.mask.hashKey));
      }
      return;
    }
    const text = this.regionText;
    const replacement = text === undefined ? undefined : this.regionNumber ? detect(this.mask.detectors, text) : detectInText(this.mask.detectors, text);
    if (replacement === undefined) {
      this.releaseMark();
      return;
    }
    this.discardMark(end);
    this.putString(replacement);
    this.changed = true;
  }

  /**
   * partialMask() laid down as bytes, when the value is ASCII text in this chunk: then every byte
   * is one code point and needs no escaping. False when the value has to be decoded instead.
   */
  private putPartial(action: { rule: PartialRule; fill: Buffer | null }): boolean {
    const fill = action.fill;
    const s = this.rawStart;
    const e = this.rawEnd;
    if (fill === null || s < 0) return false;
    const buf = this.chunk;
    for (let k = s; k < e; k++) if (buf[k]! >= 0x80) return false;
    const n = e - s;
    const { keep_start, keep_end } = action.rule;
    this.reserve(2 + n * Math.max(1, fill.length));
    const ob = this.ob;
    let o = this.olen;
    ob[o++] = 0x22;
    let hidden = n;
    if (n > keep_start + keep_end) {
      for (let k = s; k < s + keep_start; k++) ob[o++] = buf[k]!;
      hidden = n - keep_start - keep_end;
    }
    const fl = fill.length;
    for (let h = 0; h < hidden; h++) for (let f = 0; f < fl; f++) ob[o++] = fill[f]!;
    if (hidden !== n) for (let k = e - keep_end; k < e; k++) ob[o++] = buf[k]!;
    ob[o++] = 0x22;
    this.olen = o;
    return true;
  }

  // ---- keys and strings -----------------------------------------------------------------

  private startKey(i: number): number {
    const top = this.stack[this.stack.length - 1]!;
    this.st = S_STRING;
    this.strIsKey = true;
    this.strEscaped = false;
    this.pendingAction = undefined;
    this.pendingNodes = EMPTY_NODES;
    if (top.keyed) {
      if (!this.markActive) this.setMark(i, true);
      this.startCollect(C_KEY, i + 1);
    }
    return i + 1;
  }

  private startCollect(kind: number, pos: number): void {
    this.collect = kind;
    this.collectStart = pos;
    if (this.collectParts.length > 0) this.collectParts = [];
    this.collectBytes = 0;
  }

  private collected(end: number): Buffer {
    const tail = this.chunk.subarray(this.collectStart, end);
    const parts = this.collectParts;
    this.collect = C_NONE;
    if (parts.length === 0) return tail;
    this.collectParts = [];
    return Buffer.concat([...parts, tail]);
  }

  /** Stops collecting what has grown past the point where it could matter. */
  private checkCap(i: number): void {
    const size = this.collectBytes + i - this.collectStart;
    if (this.collect === C_KEY) {
      // No rule names a key this long (escapes shrink at most 6:1 when decoded): decide now
      // instead of holding the rest of it.
      if (size > (this.strEscaped ? this.mask.maxRawKeyBytes * 6 + 6 : this.mask.maxRawKeyBytes)) {
        this.collect = C_NONE;
        this.collectParts = [];
        this.decideKey(undefined);
      }
    } else if (size > MASKED_VALUE_CAP) {
      throw new MaskError(
        this.region === R_DETECT
          ? `a string for the detectors to search is larger than ${MASKED_VALUE_CAP} bytes`
          : `a value under a masked key is larger than ${MASKED_VALUE_CAP} bytes`,
      );
    }
  }

  private endString(j: number): number {
    if (this.strIsKey) {
      if (this.collect === C_KEY) {
        if (this.strEscaped || this.collectParts.length > 0) {
          this.decideKey(this.mask.canon(decodeString(this.collected(j), this.strEscaped)));
        } else {
          this.collect = C_NONE;
          this.decideKey(this.knownName(this.chunk, this.collectStart, j));
        }
      }
      this.st = S_COLON;
      return j + 1;
    }
    if (this.collect === C_VALUE) {
      if (this.region === R_DETECT && !this.strEscaped && this.collectParts.length === 0 && !mayBeDetected(this.chunk, this.collectStart, j)) {
        this.collect = C_NONE;
      } else if (this.region !== R_DETECT && !this.strEscaped && this.collectParts.length === 0) {
        this.collect = C_NONE;
        this.rawStart = this.collectStart;
        this.rawEnd = j;
      } else {
        this.regionText = decodeString(this.collected(j), this.strEscaped);
      }
    }
    this.valueDone(j + 1);
    return j + 1;
  }

  /**
   * The rule name spelled by buf[start, end), compared as bytes (folded first when the profile
   * folds names: ASCII letters lowered, `_` and `-` left out); undefined when none is.
   */
  private knownName(buf: Buffer, start: number, end: number): string | undefined {
    const mask = this.mask;
    if (end - start > mask.maxRawKeyBytes) return undefined;
    let src = buf;
    let from = start;
    let len = end - start;
    if (mask.folds) {
      const f = this.folded;
      len = 0;
      for (let k = start; k < end; k++) {
        const c = buf[k]!;
        if (isNameSeparator(c)) continue;
        f[len++] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
      }
      src = f;
      from = 0;
    }
    if (len > mask.maxKeyBytes) return undefined;
    const list = mask.names[len];
    if (list === undefined) return undefined;
    next: for (const { bytes, name } of list) {
      for (let k = 0; k < bytes.length; k++) if (src[from + k] !== bytes[k]) continue next;
      return name;
    }
    return undefined;
  }

  /** `key` undefined: a name no rule mentions (only `*` paths apply). */
  private decideKey(key: string | undefined): void {
    const top = this.stack[this.stack.length - 1]!;
    let action: MaskAction | undefined;
    let next = EMPTY_NODES;
    if (top.nodes.length === 0) {
      action = key === undefined ? undefined : this.mask.keyRules.get(key);
    } else {
      const r = resolveEntry(this.mask, top.nodes, key);
      action = r.action;
      next = r.next.length === 0 ? EMPTY_NODES : r.next;
    }
    if (action !== undefined && action.kind === 'drop') {
      if (this.held.length > 0) this.held = [];
      this.heldBytes = 0;
      this.markHold = false;
      this.region = R_DROP;
      this.regionDepth = this.stack.length;
      return;
    }
    this.releaseMark();
    top.emitted = true;
    this.pendingAction = action;
    this.pendingNodes = next;
  }

  // ---- numbers --------------------------------------------------------------------------

  private numberComplete(): boolean {
    const s = this.numState;
    return s === N_ZERO || s === N_INT || s === N_FRAC || s === N_EXP;
  }

  private number(i: number, b: number): number {
    const digit = b >= 0x30 && b <= 0x39;
    switch (this.numState) {
      case N_MINUS:
        if (!digit) throw this.syntax(i, 'invalid number');
        this.numState = b === 0x30 ? N_ZERO : N_INT;
        return i + 1;
      case N_INT:
      case N_ZERO:
        if (digit && this.numState === N_INT) return i + 1;
        if (b === 0x2e) this.numState = N_DOT;
        else if ((b | 0x20) === 0x65) this.numState = N_E;
        else return this.endNumber(i);
        return i + 1;
      case N_DOT:
        if (!digit) throw this.syntax(i, 'invalid number');
        this.numState = N_FRAC;
        return i + 1;
      case N_FRAC:
        if (digit) return i + 1;
        if ((b | 0x20) === 0x65) {
          this.numState = N_E;
          return i + 1;
        }
        return this.endNumber(i);
      case N_E:
        if (b === 0x2b || b === 0x2d) this.numState = N_ESIGN;
        else if (digit) this.numState = N_EXP;
        else throw this.syntax(i, 'invalid number');
        return i + 1;
      case N_ESIGN:
        if (!digit) throw this.syntax(i, 'invalid number');
        this.numState = N_EXP;
        return i + 1;
      default:
        if (digit) return i + 1;
        return this.endNumber(i);
    }
  }

  /** The number ended just before `i`; that byte is read again as what follows a value. */
  private endNumber(i: number): number {
    if (this.collect === C_VALUE) {
      if (this.collectParts.length > 0) this.regionText = this.collected(i).toString('latin1');
      else {
        this.collect = C_NONE;
        if (this.region !== R_DETECT) {
          this.rawStart = this.collectStart;
          this.rawEnd = i;
        } else if (i - this.collectStart >= DETECT_MIN) this.regionText = this.chunk.toString('latin1', this.collectStart, i);
      }
    }
    this.valueDone(i);
    return i;
  }
}
