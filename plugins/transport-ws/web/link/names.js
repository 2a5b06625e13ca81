// Deterministic display names ("Brave Otter") and colours from a clientId, so
// every participant — browser or the C++ CLI — shows the same name for the
// same clientId without any extra protocol. Vectors: tests/browser/vectors/link-names.json.
//
// Algorithm: h = FNV-1a 32-bit over the clientId's UTF-8 bytes;
//   adjective = ADJECTIVES[h % 32], animal = ANIMALS[(h >>> 8) % 32], hue = (h >>> 16) % 12.
// Cosmetic only: names are NOT authenticated identities (anyone holding the
// room key can claim any name inside a message).

export const ADJECTIVES = [
  'Brave', 'Calm', 'Clever', 'Cosmic', 'Curious', 'Daring', 'Eager', 'Fancy',
  'Gentle', 'Happy', 'Jolly', 'Kind', 'Lively', 'Lucky', 'Mellow', 'Mighty',
  'Nimble', 'Noble', 'Polite', 'Proud', 'Quick', 'Quiet', 'Rapid', 'Shiny',
  'Silly', 'Sunny', 'Swift', 'Tidy', 'Vivid', 'Witty', 'Young', 'Zesty',
];

export const ANIMALS = [
  'Badger', 'Bear', 'Beaver', 'Bison', 'Crane', 'Dolphin', 'Eagle', 'Falcon',
  'Ferret', 'Fox', 'Gecko', 'Heron', 'Ibis', 'Koala', 'Lemur', 'Lynx',
  'Marten', 'Moose', 'Narwhal', 'Otter', 'Owl', 'Panda', 'Puffin', 'Quokka',
  'Raven', 'Seal', 'Sparrow', 'Tiger', 'Turtle', 'Walrus', 'Wolf', 'Yak',
];

export const HUES = 12;

export function fnv1a32(str) {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(str)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export function displayName(clientId) {
  const h = fnv1a32(String(clientId));
  return `${ADJECTIVES[h % 32]} ${ANIMALS[(h >>> 8) % 32]}`;
}

// Index into the .hue-0 … .hue-11 classes of app.css (no inline styles under CSP).
export const hueIndex = (clientId) => (fnv1a32(String(clientId)) >>> 16) % HUES;
