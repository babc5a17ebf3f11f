// Hand-written SVG charts: a sparkline for the list and a line chart with one line per series for the detail page.
// Each is an image with a text alternative that says what it shows.

const palette = ['#2563eb', '#db2777', '#16a34a', '#ea580c', '#7c3aed', '#0891b2'];

export function seriesColour(index: number): string {
  return palette[index % palette.length] ?? '#2563eb';
}

/** The SVG path of `values` in a box of `width` × `height`, `pad` inside its edges so a dot on an edge shows whole. */
function path(values: (number | null)[], width: number, height: number, max: number, pad = 2): string {
  const step = values.length > 1 ? (width - 2 * pad) / (values.length - 1) : 0;
  let d = '';
  let pen = false;
  values.forEach((value, i) => {
    if (value === null) {
      pen = false;
      return;
    }
    const x = (pad + i * step).toFixed(1);
    const y = (height - pad - (max > 0 ? (value / max) * (height - 2 * pad) : 0)).toFixed(1);
    d += `${pen ? 'L' : 'M'}${x} ${y}`;
    // A point with no neighbour to join draws as a dot (a round cap on a tiny segment).
    if (!pen && (values[i + 1] ?? null) === null) d += 'h0.5';
    pen = true;
  });
  return d;
}

export function Sparkline(props: {
  values: (number | null)[];
  label: string;
  colour?: string;
  width?: number;
  height?: number;
}) {
  const width = props.width ?? 96;
  const height = props.height ?? 24;
  const numbers = props.values.filter((v): v is number => v !== null);
  const max = Math.max(0, ...numbers);
  return (
    <svg
      className="sparkline"
      width={width}
      height={height}
      viewBox={`0 0 ${width} ${height}`}
      role="img"
      aria-label={`${props.label}: ${numbers.length === 0 ? 'no data' : `peak ${formatNumber(max)}`}`}
    >
      <path
        d={path(props.values, width, height, max)}
        fill="none"
        stroke={props.colour ?? '#2563eb'}
        strokeWidth="2"
        strokeLinecap="round"
        strokeLinejoin="round"
      />
    </svg>
  );
}

export interface ChartSeries {
  name: string;
  values: (number | null)[];
}

export function LineChart(props: {
  title: string;
  unit: string;
  series: ChartSeries[];
  times: string[];
  height?: number;
}) {
  const width = 560;
  const height = props.height ?? 140;
  const left = 52;
  const bottom = 22;
  const all = props.series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const max = Math.max(0, ...all);
  const plotW = width - left - 6;
  const plotH = height - bottom - 6;
  const first = props.times[0];
  const last = props.times[props.times.length - 1];
  const summary = props.series
    .map((s) => {
      const vs = s.values.filter((v): v is number => v !== null);
      return `${s.name}: ${vs.length === 0 ? 'no data' : `peak ${formatNumber(Math.max(...vs))} ${props.unit}`}`;
    })
    .join('; ');
  return (
    <figure className="chart">
      <figcaption>
        {props.title} <span className="muted">({props.unit})</span>
      </figcaption>
      <svg
        viewBox={`0 0 ${width} ${height}`}
        width="100%"
        role="img"
        aria-label={`${props.title}. ${summary || 'no data'}`}
      >
        <line x1={left} y1={6} x2={left} y2={6 + plotH} className="axis" />
        <line x1={left} y1={6 + plotH} x2={left + plotW} y2={6 + plotH} className="axis" />
        <text x={left - 4} y={16} textAnchor="end" className="tick">
          {formatNumber(max)}
        </text>
        <text x={left - 4} y={6 + plotH} textAnchor="end" className="tick">
          0
        </text>
        {first !== undefined && (
          <text x={left} y={height - 4} className="tick">
            {shortTime(first)}
          </text>
        )}
        {last !== undefined && (
          <text x={left + plotW} y={height - 4} textAnchor="end" className="tick">
            {shortTime(last)}
          </text>
        )}
        <g transform={`translate(${left} 6)`}>
          {props.series.map((s, i) => (
            <path
              key={s.name}
              d={path(s.values, plotW, plotH, max)}
              fill="none"
              stroke={seriesColour(i)}
              strokeWidth="2"
              strokeLinecap="round"
              strokeLinejoin="round"
              vectorEffect="non-scaling-stroke"
            />
          ))}
        </g>
      </svg>
      {props.series.length > 0 && (
        <ul className="legend">
          {props.series.map((s, i) => (
            <li key={s.name}>
              <span className={`swatch swatch-${i % palette.length}`} aria-hidden="true" />
              {s.name}
            </li>
          ))}
        </ul>
      )}
    </figure>
  );
}

export function formatNumber(value: number): string {
  if (value >= 1000) return `${(value / 1000).toFixed(value >= 10_000 ? 0 : 1)}k`;
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

export function shortTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toTimeString().slice(0, 5);
}
