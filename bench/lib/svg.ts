// A grouped bar chart as a hand-written SVG string (no dependencies): one group per x category,
// one bar per series, a y axis with gridlines, axis titles and a legend.

export interface BarChart {
  title: string
  xLabel: string
  yLabel: string
  categories: string[]
  series: Array<{ name: string; values: number[] }>
  width?: number
  height?: number
}

const COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948']
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/** 1, 2, 5 × 10^k steps giving about 5 gridlines. */
function niceStep(max: number): number {
  const raw = max / 5
  const pow = 10 ** Math.floor(Math.log10(raw || 1))
  return ([1, 2, 5, 10].find((m) => m * pow >= raw) ?? 10) * pow
}

export function barChartSvg(chart: BarChart): string {
  const width = chart.width ?? 800
  const height = chart.height ?? 400
  const m = { top: 40, right: 150, bottom: 60, left: 70 }
  const plotW = width - m.left - m.right
  const plotH = height - m.top - m.bottom
  const max = Math.max(1, ...chart.series.flatMap((s) => s.values.filter(Number.isFinite)))
  const step = niceStep(max)
  const top = Math.ceil(max / step) * step
  const y = (v: number) => m.top + plotH - (v / top) * plotH
  const groupW = plotW / chart.categories.length
  const barW = (groupW * 0.8) / chart.series.length

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${m.left + plotW / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(chart.title)}</text>`
  ]
  for (let v = 0; v <= top + step / 2; v += step) {
    out.push(
      `<line x1="${m.left}" x2="${m.left + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`,
      `<text x="${m.left - 6}" y="${y(v) + 4}" text-anchor="end">${Math.round(v)}</text>`
    )
  }
  chart.categories.forEach((cat, ci) => {
    const gx = m.left + ci * groupW + groupW * 0.1
    chart.series.forEach((s, si) => {
      const v = s.values[ci] ?? NaN
      if (!Number.isFinite(v)) return
      const x = gx + si * barW
      out.push(
        `<rect x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(m.top + plotH - y(v)).toFixed(1)}" fill="${COLORS[si % COLORS.length]}"><title>${esc(`${s.name}, ${cat}: ${v.toFixed(1)}`)}</title></rect>`,
        `<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(y(v) - 3).toFixed(1)}" text-anchor="middle" font-size="9">${Math.round(v)}</text>`
      )
    })
    out.push(`<text x="${m.left + ci * groupW + groupW / 2}" y="${m.top + plotH + 18}" text-anchor="middle">${esc(cat)}</text>`)
  })
  out.push(
    `<line x1="${m.left}" x2="${m.left + plotW}" y1="${m.top + plotH}" y2="${m.top + plotH}" stroke="#333"/>`,
    `<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${m.top + plotH}" stroke="#333"/>`,
    `<text x="${m.left + plotW / 2}" y="${height - 15}" text-anchor="middle">${esc(chart.xLabel)}</text>`,
    `<text transform="translate(18 ${m.top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(chart.yLabel)}</text>`
  )
  chart.series.forEach((s, si) => {
    const ly = m.top + 10 + si * 22
    out.push(
      `<rect x="${width - m.right + 20}" y="${ly - 10}" width="14" height="14" fill="${COLORS[si % COLORS.length]}"/>`,
      `<text x="${width - m.right + 40}" y="${ly + 1}">${esc(s.name)}</text>`
    )
  })
  out.push('</svg>')
  return out.join('\n')
}
