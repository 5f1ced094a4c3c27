// The tables of cleanup, audit and namespaces reconcile (no dependency: audit/log.ts stays pure).

/** Rows (the header first) as aligned lines: each column padded to its widest cell, two spaces between. */
export function formatColumns(rows: readonly string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}
