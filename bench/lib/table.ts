// Markdown tables and the number formats every scenario prints.

export type Cell = string | number | undefined

export function fmt(value: number | undefined, digits = 0): string {
  if (value === undefined || !Number.isFinite(value)) return '—'
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

/** "1.23×" */
export const times = (value: number): string => (Number.isFinite(value) ? `${value.toFixed(2)}×` : '—')

/** `{a: 2, b: 1}` → "a 2, b 1"; empty → "0". */
export function counts(record: Record<string, number>): string {
  const entries = Object.entries(record).filter(([, n]) => n !== 0)
  return entries.length ? entries.map(([k, n]) => `${k} ${n}`).join(', ') : '0'
}

export function markdownTable(headers: string[], rows: Cell[][]): string {
  const text = rows.map((row) =>
    headers.map((_, i) => {
      const cell = row[i]
      return typeof cell === 'number' ? fmt(cell) : (cell ?? '')
    })
  )
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => r[i]?.length ?? 0)))
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`
  return [line(headers), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...text.map(line)].join('\n')
}
