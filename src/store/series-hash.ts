/**
 * A 53-bit hash of a series' identity (family name and label pairs, empty values left out),
 * as a plain number so the index holds it without a string per series. Two independent 32-bit
 * multiply-xorshift lanes, folded to 53 bits: at a million stored series the chance that any
 * two collide (a false conflict) is about 1 in 10^4 over the whole store, and a collision only
 * ever refuses, never admits.
 */
export function seriesHash(family: string, pairs: ReadonlyArray<readonly [string, string]>): number {
  let a = 0x9e3779b9;
  let b = 0x85ebca6b;
  const mix = (code: number) => {
    a = Math.imul(a ^ code, 0xcc9e2d51);
    b = Math.imul(b ^ code, 0x1b873593);
    a = (a << 13) | (a >>> 19);
    b = (b << 15) | (b >>> 17);
  };
  // Length first: no value can spell another label set.
  const text = (value: string) => {
    mix(value.length);
    for (let index = 0; index < value.length; index++) mix(value.charCodeAt(index));
  };
  text(family);
  for (const [name, value] of pairs) {
    text(name);
    text(value);
  }
  a = Math.imul(a ^ (a >>> 16), 0x85ebca6b) ^ Math.imul(b, 0xc2b2ae35);
  b = Math.imul(b ^ (b >>> 13), 0xc2b2ae35) ^ Math.imul(a, 0x85ebca6b);
  return (b >>> 0) * 0x200000 + ((a >>> 0) & 0x1fffff);
}
