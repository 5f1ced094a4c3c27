// Whether an object read from the apiserver says the same as the one this version builds: keys in any order, and
// the empty values the server adds or drops (an empty objectSelector…) ignored.

export function sameData(live: unknown, desired: unknown): boolean {
  return JSON.stringify(normalize(live)) === JSON.stringify(normalize(desired));
}

/** Plain data with sorted keys, without empty values. */
function normalize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalize);
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value)
    .map(([key, inner]) => [key, normalize(inner)] as const)
    .filter(([, inner]) => !isEmpty(inner))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Object.fromEntries(entries);
}

function isEmpty(value: unknown): boolean {
  if (value === undefined || value === null) return true;
  if (Array.isArray(value)) return value.length === 0;
  return typeof value === 'object' && Object.keys(value).length === 0;
}
