// Prometheus text exposition (format 0.0.4), written by hand: a few counters and gauges need no library.

type Labels = Record<string, string>;

interface Family {
  help: string;
  type: 'counter' | 'gauge';
  values: Map<string, { labels: Labels; value: number }>;
}

function labelKey(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export class Metrics {
  private readonly families = new Map<string, Family>();
  private readonly collectors: Array<() => void> = [];

  constructor() {
    this.define(
      'bridge_relay_messages_total',
      'counter',
      'Relay messages received, by outcome (queued, duplicate, suppressed, filtered).',
    );
    this.define('bridge_relay_stream_connects_total', 'counter', 'Relay stream connections opened.');
    this.define('bridge_relay_stream_connected', 'gauge', '1 while the relay stream is open.');
    this.define('bridge_relay_acks_total', 'counter', 'POST /messages/ack calls, by result.');
    this.define(
      'bridge_webhook_attempts_total',
      'counter',
      'Webhook POST attempts, by result (delivered, retry, dead).',
    );
    this.define(
      'bridge_webhook_latency_seconds_sum',
      'counter',
      'Total time spent in webhook POST attempts.',
    );
    this.define('bridge_webhook_latency_seconds_count', 'counter', 'Number of timed webhook POST attempts.');
    this.define('bridge_inbound_total', 'counter', 'POST /im/inbound requests, by status.');
    this.define('bridge_send_requests_total', 'counter', 'Send API requests, by HTTP status.');
    this.define('bridge_relay_send_attempts_total', 'counter', 'POST /send calls to the relay, by result.');
    this.define('bridge_media_requests_total', 'counter', 'GET /media/<token> requests, by HTTP status.');
    this.define(
      'bridge_media_copies_total',
      'counter',
      'Attachments copied from the relay when taken, by outcome (kept, gone, failed, skipped).',
    );
    this.define('bridge_media_copies', 'gauge', 'Local copies of attachments held in BRIDGE_DATA_DIR/media.');
    this.define('bridge_media_copies_bytes', 'gauge', 'Total size of those copies.');
    this.define(
      'bridge_outbox_messages',
      'gauge',
      'Outbox rows by state (pending, dead, delivered-and-retained).',
    );
    this.define('bridge_outbox_oldest_pending_age_seconds', 'gauge', 'Age of the oldest pending outbox row.');
  }

  private define(name: string, type: Family['type'], help: string): void {
    this.families.set(name, { help, type, values: new Map() });
  }

  private family(name: string): Family {
    const f = this.families.get(name);
    if (!f) throw new Error(`unknown metric ${name}`);
    return f;
  }

  inc(name: string, labels: Labels = {}, by = 1): void {
    const f = this.family(name);
    const key = labelKey(labels);
    const cur = f.values.get(key);
    if (cur) cur.value += by;
    else f.values.set(key, { labels, value: by });
  }

  set(name: string, labels: Labels, value: number): void {
    this.family(name).values.set(labelKey(labels), { labels, value });
  }

  get(name: string, labels: Labels = {}): number {
    return this.family(name).values.get(labelKey(labels))?.value ?? 0;
  }

  /** Called before each render (gauges read from the outbox). */
  onCollect(fn: () => void): void {
    this.collectors.push(fn);
  }

  render(): string {
    for (const fn of this.collectors) fn();
    let out = '';
    for (const [name, f] of this.families) {
      out += `# HELP ${name} ${f.help}\n# TYPE ${name} ${f.type}\n`;
      for (const { labels, value } of f.values.values()) {
        const l = Object.entries(labels)
          .map(([k, v]) => `${k}="${escapeLabel(v)}"`)
          .join(',');
        out += `${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 0}\n`;
      }
    }
    return out;
  }
}
