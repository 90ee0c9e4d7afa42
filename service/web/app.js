// Vericlip page: upload or record a clip, show the server's verdict per segment, compare
// versions. Plain ES module, no dependencies. Talks to POST /v1/classify, GET /v1/models,
// GET /v1/stream (WebSocket) and GET /model-card on the same origin.

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids.flat()) if (k != null) e.append(k);
  return e;
};

const ui = {
  select: $('#model-select'),
  info: $('#model-info'),
  key: $('#api-key'),
  keyDetails: $('#key-details'),
  file: $('#file'),
  drop: $('#drop'),
  record: $('#record'),
  recTime: $('#rec-time'),
  level: $('#level'),
  status: $('#status'),
  clip: $('#clip'),
  clipMeta: $('#clip-meta'),
  clipHeading: $('#clip-heading'),
  play: $('#play'),
  audio: $('#audio'),
  compare: $('#compare-box'),
  results: $('#results'),
  dialog: $('#card-dialog'),
  cardBody: $('#card-body'),
};

const state = {
  models: [], // from /v1/models
  clip: null, // { name, blob, samples: Float32Array|null, rate, duration, live }
  cards: new Map(), // "name|version" -> card object
  rec: null, // active recording
};

// ---------- helpers ----------

const fmt3 = (x) => (Number.isFinite(x) ? x.toFixed(3) : '—');
const fmtTime = (s) => {
  if (!Number.isFinite(s)) return '—';
  const m = Math.floor(s / 60);
  const r = s - m * 60;
  return `${m}:${r < 10 ? '0' : ''}${r.toFixed(r % 1 ? 1 : 0)}`;
};
const clockTime = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, '0')}`;
const versionLabel = (name, v) => `${name} · v${v}`;

function setStatus(text, kind = '') {
  ui.status.textContent = text;
  ui.status.className = `status ${kind}`;
}

/** The API key as typed (a pasted "Bearer " prefix is dropped). */
const apiKey = () => ui.key.value.trim().replace(/^Bearer\s+/i, '');

function authHeaders() {
  const k = apiKey();
  return k ? { authorization: `Bearer ${k}` } : {};
}

/** Parses an error response into {name, code, message}. */
async function errorOf(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch {
    /* not JSON */
  }
  if (body && body.error) return body.error;
  return { name: `http_${resp.status}`, code: String(resp.status), message: resp.statusText || 'request failed' };
}

const FRIENDLY = {
  undecodable_audio: 'This file is not audio we can read',
  unsupported_audio: 'This audio format is not supported',
  empty_audio: 'There is no audio in this file',
  audio_too_long: 'This clip is too long',
  non_finite_samples: 'This file contains invalid samples',
  invalid_sample_rate: 'This file has an unusual sample rate we cannot use',
  invalid_channels: 'This file has an unusual channel layout we cannot use',
  message_too_large: 'This file is too large for the server',
  unauthenticated: 'This server needs an API key',
  permission_denied: 'This API key is not allowed here',
  model_not_found: 'That model version is no longer loaded',
  queue_full: 'The server is busy: try again in a moment',
  too_many_streams: 'Too many live recordings at once: try again in a moment',
  unavailable: 'The server is not ready or is shutting down',
  stream_idle: 'The live connection went quiet and was closed',
  deadline_exceeded: 'The server took too long to answer',
  connection_failed: 'Could not start the live connection',
  connection_closed: 'The live connection ended early',
};
/** A person's headline for an error; `live` for a microphone recording, else an uploaded clip. */
function friendly(err, live = false) {
  if (/short/.test(err.name || '')) {
    // The server's own minimum ("at least 1.00 s is needed"), so the headline and the message agree.
    const m = /at least ([\d.]+) s/.exec(err.message || '');
    const secs = m ? `${Number(m[1])} second${Number(m[1]) === 1 ? '' : 's'}` : 'a second';
    return live ? `This recording is too short: speak for at least ${secs}` : `This clip is too short: at least ${secs} of audio is needed`;
  }
  if (FRIENDLY[err.name]) return FRIENDLY[err.name];
  if (err.code === 'UNAUTHENTICATED' || err.code === '401') return FRIENDLY.unauthenticated;
  return 'The server could not analyse this audio';
}

// Score colour: green below the threshold, red at or above it; stronger further from it.
function scoreColor(score, threshold, alpha = 1) {
  const fake = score >= threshold;
  const span = fake ? 1 - threshold : threshold;
  const conf = span > 0 ? Math.min(1, Math.abs(score - threshold) / span) : 1;
  const a = (0.35 + 0.65 * conf) * alpha;
  return fake ? `rgba(211, 47, 47, ${a})` : `rgba(27, 150, 84, ${a})`;
}

const NO_SPEECH_COLOR = 'rgba(100, 116, 139, ALPHA)';
const UNJUDGED_COLOR = '#dfe4ea';

/** A segment's colour: its score's, or neutral grey when it had no speech (not scored). */
function segColor(s, threshold, alpha = 1) {
  if (s.verdict === 'no_speech') return NO_SPEECH_COLOR.replace('ALPHA', String(0.55 * alpha));
  return scoreColor(s.fake_score, threshold, alpha);
}

// ---------- models ----------

async function loadModels() {
  let resp;
  try {
    resp = await fetch('/v1/models', { headers: authHeaders() });
  } catch (e) {
    ui.info.textContent = `Could not reach the server: ${e.message}`;
    return;
  }
  if (!resp.ok) {
    const err = await errorOf(resp);
    ui.select.replaceChildren(el('option', { text: 'Models unavailable' }));
    ui.info.replaceChildren(errorBox(err));
    if (resp.status === 401 || err.code === 'UNAUTHENTICATED') {
      ui.keyDetails.open = true;
      ui.key.focus();
    }
    return;
  }
  const body = await resp.json();
  state.models = groupModels(body.models || []);
  const prev = ui.select.value;
  ui.select.replaceChildren();
  for (const m of state.models) {
    const group = el('optgroup', { label: m.name });
    const versions = [...(m.versions || [])].sort((a, b) => b.version - a.version);
    for (const v of versions) {
      const serving = v.version === m.serving_version;
      const role = serving ? ' (serving)' : v.canary ? ` (canary, ${percent(v.traffic_fraction)} of requests)` : '';
      group.append(
        el('option', {
          value: `${m.name}|${v.version}`,
          text: `${m.name} v${v.version}${role}`,
          selected: serving,
        }),
      );
    }
    ui.select.append(group);
  }
  if (!state.models.length) ui.select.append(el('option', { text: 'No model loaded yet' }));
  if ([...ui.select.options].some((o) => o.value === prev)) ui.select.value = prev;
  ui.select.disabled = !state.models.length;
  renderModelInfo();
  renderCompare();
}

/**
 * GET /v1/models lists every loaded version (the API's ListModelsResponse, the same fields as
 * gRPC ListModels); the page groups them by model: the serving (stable) version, the canary
 * with its share of the requests, and the versions with their test metrics.
 */
function groupModels(list) {
  const byName = new Map();
  for (const v of list) {
    if (!byName.has(v.name)) byName.set(v.name, { name: v.name, serving_version: null, canary: null, versions: [] });
    const m = byName.get(v.name);
    if (v.serving) m.serving_version = v.version;
    if (v.canary) m.canary = { version: v.version, fraction: v.traffic_fraction };
    m.versions.push({ ...v, metrics: v.test_metrics });
  }
  return [...byName.values()];
}

function percent(fraction) {
  return `${(100 * (fraction || 0)).toFixed(1).replace(/\.0$/, '')} %`;
}

function selected() {
  const [name, v] = (ui.select.value || '').split('|');
  return name && v ? { name, version: Number(v) } : { name: '', version: 0 };
}

function versionInfo(name, version) {
  const m = state.models.find((x) => x.name === name);
  return m && (m.versions || []).find((v) => v.version === version);
}

const METRIC_LABEL = {
  eer: 'EER',
  auc: 'ROC AUC',
  roc_auc: 'ROC AUC',
  accuracy: 'Accuracy',
  precision: 'Precision',
  recall: 'Recall',
  f1: 'F1',
  n: 'Test clips',
  threshold: 'Threshold',
};
const PERCENT = new Set(['eer', 'accuracy', 'precision', 'recall']);

/** The test metrics to show: the object itself, or its "test" member when it holds splits. */
function testMetrics(metrics) {
  if (!metrics || typeof metrics !== 'object') return {};
  if (metrics.test && typeof metrics.test === 'object') return metrics.test;
  return metrics;
}

function metricValue(key, v) {
  if (v == null) return '—';
  if (typeof v === 'number') {
    if (PERCENT.has(key)) return `${(v * 100).toFixed(1)} %`;
    return Number.isInteger(v) ? String(v) : v.toFixed(3);
  }
  if (typeof v === 'object') {
    return Object.entries(v)
      .map(([k, x]) => `${k} ${typeof x === 'number' && !Number.isInteger(x) ? x.toFixed(3) : x}`)
      .join(' · ');
  }
  return String(v);
}

function renderModelInfo() {
  const { name, version } = selected();
  const v = versionInfo(name, version);
  if (!v) {
    ui.info.replaceChildren();
    return;
  }
  const m = state.models.find((x) => x.name === name);
  const created = v.created_at ? new Date(v.created_at) : null;
  const facts = el(
    'dl',
    { class: 'facts' },
    fact('Serving', m.serving_version === version ? `yes (v${m.serving_version})` : `no (serving v${m.serving_version})`),
    // During a canary: who answers which share of the requests that name no version.
    m.canary ? fact('Canary', `v${m.canary.version}: ${percent(m.canary.fraction)} of requests`, 'canary') : null,
    fact('Threshold', fmt3(v.threshold)),
    fact('Runs on', v.execution_provider || '—'),
    created && !Number.isNaN(created.getTime()) ? fact('Published', created.toISOString().slice(0, 10)) : null,
    // Validation (unseen speakers and voices of trained engine families) beside the held-out test
    // split below: bundled versions 3 and 4's test split holds only engines never trained on,
    // and either number alone misreads the model.
    typeof v.validation_metrics?.eer === 'number'
      ? fact('Validation EER (unseen voices)', metricValue('eer', v.validation_metrics.eer), 'validation_eer')
      : null,
  );
  const tm = testMetrics(v.metrics);
  const keys = Object.keys(tm).filter((k) => !k.includes('/') && k !== 'threshold');
  const summary = ['eer', 'auc', 'roc_auc', 'accuracy'].filter((k) => typeof tm[k] === 'number')
    .map((k) => `${METRIC_LABEL[k]} ${metricValue(k, tm[k])}`).join(' · ');
  const metrics = el(
    'dl',
    { class: 'facts metrics', 'data-model': name, 'data-model-version': version },
    keys.map((k) => fact(METRIC_LABEL[k] || capital(k.replace(/_/g, ' ')), metricValue(k, tm[k]), k)),
  );
  const details = el(
    'details',
    { class: 'metrics-details', open: window.matchMedia('(min-width: 721px)').matches },
    el('summary', {}, el('span', { class: 'metrics-head', text: 'Held-out test metrics' }), el('span', { class: 'metrics-sum', text: summary })),
    metrics,
  );
  ui.info.replaceChildren(facts, keys.length ? details : null);
}

const capital = (s) => s.charAt(0).toUpperCase() + s.slice(1);

function fact(label, value, key) {
  return el('div', { class: 'fact', 'data-key': key }, el('dt', { text: label }), el('dd', { text: value }));
}

// ---------- clip (file or recording) ----------

function resetClip(clip) {
  for (const c of state.cards.values()) c.dispose?.();
  state.cards.clear();
  ui.results.replaceChildren();
  if (state.clip && state.clip.url) URL.revokeObjectURL(state.clip.url);
  ui.audio.pause();
  ui.audio.removeAttribute('src');
  ui.audio.load();
  state.clip = clip;
  ui.clip.hidden = false;
  ui.play.disabled = true;
  ui.play.textContent = 'Play';
  renderClipMeta();
  renderCompare();
  // On a phone the result is below the inputs: bring it into view.
  if (window.matchMedia('(max-width: 720px)').matches) ui.clip.scrollIntoView({ block: 'start' });
}

function renderClipMeta() {
  const c = state.clip;
  if (!c) return;
  ui.clipHeading.textContent = c.live ? 'Live recording' : c.name;
  const parts = [];
  if (Number.isFinite(c.duration)) parts.push(`${c.duration.toFixed(2)} s`);
  if (c.blob && c.blob.size) parts.push(`${(c.blob.size / 1024).toFixed(c.blob.size < 10240 ? 1 : 0)} KiB`);
  if (c.live && c.recording) parts.push('recording…');
  ui.clipMeta.textContent = parts.join(' · ');
}

function setPlayable(blob) {
  const c = state.clip;
  c.url = URL.createObjectURL(blob);
  ui.audio.src = c.url;
  ui.play.disabled = false;
}

async function handleFile(file) {
  if (!file) return;
  if (state.rec) {
    setStatus('Stop the recording first.', 'warn');
    return;
  }
  resetClip({ name: file.name || 'clip', blob: file, samples: null, rate: 0, duration: NaN, live: false });
  setPlayable(file);
  const { name, version } = selected();
  // Draw from the browser's own decode (drawing only; the verdict is the server's).
  ui.clip.dataset.decoded = 'pending';
  decodeForDrawing(file).then(() => {
    if (state.clip && state.clip.blob === file) ui.clip.dataset.decoded = state.clip.samples ? 'true' : 'false';
    renderClipMeta();
    for (const c of state.cards.values()) c.redraw();
  });
  await classify(name, version);
}

async function decodeForDrawing(blob) {
  const c = state.clip;
  try {
    const bytes = await blob.arrayBuffer();
    const Ctx = window.OfflineAudioContext || window.webkitOfflineAudioContext;
    const ctx = new Ctx(1, 1, 44100);
    const buf = await ctx.decodeAudioData(bytes);
    if (state.clip !== c) return;
    const mono = new Float32Array(buf.length);
    for (let ch = 0; ch < buf.numberOfChannels; ch++) {
      const d = buf.getChannelData(ch);
      for (let i = 0; i < d.length; i++) mono[i] += d[i] / buf.numberOfChannels;
    }
    c.samples = mono;
    c.rate = buf.sampleRate;
    c.duration = buf.duration;
  } catch {
    c.samples = null; // the browser cannot decode it: the timeline still shows segments
    if (state.clip === c) ui.play.disabled = true;
  }
}

// ---------- classify ----------

async function classify(name, version) {
  const c = state.clip;
  if (!c || !c.blob) return;
  const key = `${name}|${version}`;
  const card = cardFor(key, name, version, false);
  card.pending();
  setStatus(`Analysing ${c.live ? 'the recording' : c.name} with ${versionLabel(name || 'serving model', version || '')}…`);
  const q = new URLSearchParams();
  if (name) q.set('model', name);
  if (version) q.set('version', String(version));
  let resp;
  try {
    resp = await fetch(`/v1/classify?${q}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', ...authHeaders() },
      body: c.blob,
    });
  } catch (e) {
    if (state.clip !== c) return;
    card.error({ name: 'network_error', code: 'UNAVAILABLE', message: e.message });
    setStatus('The server could not be reached.', 'bad');
    return;
  }
  if (state.clip !== c) return;
  if (!resp.ok) {
    const err = await errorOf(resp);
    card.error(err);
    setStatus(`${friendly(err, c.live)} (${err.name}).`, 'bad');
    if (err.code === 'UNAUTHENTICATED') ui.keyDetails.open = true;
    return;
  }
  const r = await resp.json();
  if (!Number.isFinite(c.duration) && Number.isFinite(r.duration_seconds)) {
    c.duration = r.duration_seconds;
    renderClipMeta();
  }
  // The server names the version it used (a request for the serving version gets a number).
  card.result(r);
  // The status line speaks for the clip's first card (the version chosen above, normally the
  // serving one); "Compare with" only adds a card beside it.
  const primary = [...state.cards.values()].find((x) => x.last);
  setStatus(resultStatus(primary ? primary.last : r));
  renderCompare();
}

const resultStatus = (r) => (r.verdict === 'no_speech'
  ? `${versionLabel(r.model, r.model_version)}: ${headline(r.verdict)}: silence or sound too faint to judge.`
  : `${versionLabel(r.model, r.model_version)}: ${headline(r.verdict)} (score ${fmt3(r.fake_score)}, threshold ${fmt3(r.threshold)}).`);

const headline = (verdict) => ({ fake: 'Likely synthetic speech', no_speech: 'No speech found' }[verdict] || 'Likely real human speech');
const verdictTag = (verdict) => ({ fake: 'FAKE', no_speech: 'NO SPEECH' }[verdict] || 'REAL');
const verdictClass = (verdict) => ({ fake: 'fake', no_speech: 'nospeech' }[verdict] || 'real');

// ---------- compare ----------

function renderCompare() {
  ui.compare.replaceChildren();
  const c = state.clip;
  if (!c || !c.blob || c.recording) return;
  // Nothing to compare when the audio itself was refused (or nothing has answered yet).
  const cards = [...state.cards.values()];
  if (!cards.some((x) => x.root.dataset.state === 'done')) return;
  const shown = new Set([...state.cards.values()].map((x) => `${x.name}|${x.version}`));
  const buttons = [];
  for (const m of state.models) {
    for (const v of [...(m.versions || [])].sort((a, b) => b.version - a.version)) {
      if (shown.has(`${m.name}|${v.version}`)) continue;
      buttons.push(
        el('button', {
          type: 'button',
          class: 'btn small',
          'data-compare': `${m.name}|${v.version}`,
          text: `Compare with v${v.version}`,
          title: `Run this clip on ${m.name} version ${v.version} and show both results`,
          onclick: () => classify(m.name, v.version),
        }),
      );
    }
  }
  ui.compare.append(...buttons);
}

// ---------- result cards ----------

function cardFor(key, name, version, live) {
  let card = state.cards.get(key);
  if (!card) {
    card = new ResultCard(name, version, live);
    state.cards.set(key, card);
    ui.results.append(card.root);
  }
  return card;
}

class ResultCard {
  constructor(name, version, live) {
    this.name = name;
    this.version = version;
    this.live = live;
    this.segments = [];
    this.threshold = NaN;
    this.badge = el('span', { class: 'badge', text: name ? versionLabel(name, version) : 'serving model' });
    this.kind = el('span', { class: 'kind', text: live ? 'live' : 'file' });
    this.verdict = el('div', { class: 'verdict' });
    this.scorebar = el('div', { class: 'scorebar', hidden: true });
    this.scoreText = el('p', { class: 'score-text' });
    this.canvas = el('canvas', { class: 'wave-canvas', 'aria-hidden': 'true' });
    this.cursor = el('div', { class: 'cursor', hidden: true });
    this.wave = el(
      'div',
      { class: 'wave', role: 'img', 'aria-label': 'Waveform with a timeline coloured by fake score' },
      this.canvas,
      this.cursor,
    );
    this.wave.addEventListener('click', (e) => this.seekFromClick(e));
    this.tbody = el('tbody');
    this.table = el(
      'table',
      { class: 'segments' },
      el('caption', { text: live ? 'Windows (2 s each, scored as they arrive)' : 'Segments (2 s each)' }),
      el(
        'thead',
        {},
        el('tr', {}, el('th', { scope: 'col', text: '#' }), el('th', { scope: 'col', text: 'Time' }),
          el('th', { scope: 'col', text: 'Fake score' }), el('th', { scope: 'col', text: 'Verdict' })),
      ),
      this.tbody,
    );
    this.details = el('p', { class: 'hint details' });
    this.root = el(
      'article',
      { class: 'result', 'data-state': 'pending', 'data-model': name, 'data-model-version': version, 'data-live': live ? 'true' : 'false' },
      el('header', { class: 'result-head' }, this.badge, this.kind),
      this.verdict,
      this.scorebar,
      this.scoreText,
      this.wave,
      el('div', { class: 'legend', 'aria-hidden': 'true' },
        el('span', { class: 'sw real' }), 'real', el('span', { class: 'sw fake' }), 'synthetic',
        el('span', { class: 'sw nospeech' }), 'no speech',
        el('span', { class: 'sw unjudged' }), live ? 'not judged yet' : 'not judged (a tail under 1 s)',
        el('span', { class: 'sw cur' }), 'playback'),
      el('div', { class: 'table-wrap' }, this.table),
      this.details,
    );
    this.ro = new ResizeObserver(() => this.redraw());
    this.ro.observe(this.wave);
  }

  dispose() {
    this.ro.disconnect();
  }

  setState(s) {
    this.root.dataset.state = s;
  }

  pending() {
    this.setState('pending');
    this.last = null;
    this.root.querySelector('.error')?.remove();
    this.verdict.className = 'verdict pending';
    this.verdict.replaceChildren(el('span', { class: 'spinner', 'aria-hidden': 'true' }), el('strong', { text: 'Analysing…' }));
    this.scorebar.hidden = true;
    this.scoreText.textContent = '';
    this.segments = [];
    this.tbody.replaceChildren();
    this.redraw();
  }

  listening() {
    this.setState('recording');
    this.verdict.className = 'verdict pending';
    this.verdict.replaceChildren(el('span', { class: 'rec-dot', 'aria-hidden': 'true' }), el('strong', { text: 'Listening…' }),
      el('span', { class: 'sub', text: 'the first verdict comes after 2 seconds of audio' }));
  }

  error(err) {
    this.setState('error');
    this.last = null;
    this.root.dataset.errorName = err.name;
    this.verdict.className = 'verdict error-verdict';
    this.verdict.replaceChildren();
    this.scorebar.hidden = true;
    this.scoreText.textContent = '';
    this.root.querySelector('.error')?.remove();
    this.verdict.after(errorBox(err, this.live));
    this.redraw();
  }

  /** A live window verdict (streaming). */
  addWindow(seg) {
    if (Number.isFinite(seg.threshold)) this.threshold = seg.threshold;
    this.segments.push(seg);
    this.tbody.append(this.row(seg));
    const thr = this.thresholdOr();
    const n = this.segments.length;
    const quiet = seg.verdict === 'no_speech';
    this.verdict.className = `verdict live ${verdictClass(seg.verdict)}`;
    this.verdict.replaceChildren(
      el('span', { class: 'tag', text: verdictTag(seg.verdict) }),
      el('strong', { text: quiet ? 'No speech in the latest window' : `${headline(seg.verdict)} so far` }),
      el('span', { class: 'sub', text: `latest window ${fmtTime(seg.start_seconds)}–${fmtTime(seg.end_seconds)}: ${quiet ? 'silence or too faint, not scored' : `score ${fmt3(seg.fake_score)}`} · ${n} window${n === 1 ? '' : 's'}` }),
    );
    if (quiet) this.hideScore();
    else this.showScore(seg.fake_score, thr, 'Latest window fake score');
    this.redraw();
  }

  thresholdOr() {
    if (Number.isFinite(this.threshold)) return this.threshold;
    const v = versionInfo(this.name, this.version);
    return v ? v.threshold : 0.5;
  }

  hideScore() {
    this.scorebar.hidden = true;
    this.scoreText.textContent = '';
  }

  showScore(score, thr, what) {
    this.scorebar.hidden = false;
    const pct = (x) => `${Math.max(0, Math.min(1, x)) * 100}%`;
    this.scorebar.replaceChildren(
      el('span', { class: 'fill', style: `width:${pct(score)};background:${scoreColor(score, thr)}` }),
      el('span', { class: 'thr', style: `left:${pct(thr)}`, title: `threshold ${fmt3(thr)}` }),
    );
    this.scorebar.setAttribute('role', 'meter');
    this.scorebar.setAttribute('aria-valuemin', '0');
    this.scorebar.setAttribute('aria-valuemax', '1');
    this.scorebar.setAttribute('aria-valuenow', String(score));
    this.scorebar.setAttribute('aria-label', `${what} fake score`);
    this.scoreText.replaceChildren(
      `${what} `, el('strong', { class: 'score', text: fmt3(score) }),
      ` · called synthetic at ≥ ${fmt3(thr)}`,
    );
  }

  /** The final answer (classify JSON, or a stream summary). */
  result(r) {
    this.name = r.model ?? this.name;
    this.version = r.model_version ?? this.version;
    this.threshold = r.threshold;
    const d = this.root.dataset;
    d.state = 'done';
    d.verdict = r.verdict;
    d.fakeScore = String(r.fake_score);
    d.threshold = String(r.threshold);
    d.model = r.model;
    d.modelVersion = String(r.model_version);
    d.requestId = r.request_id || '';
    d.duration = String(r.duration_seconds);
    delete d.errorName;
    this.root.querySelector('.error')?.remove();
    this.badge.textContent = versionLabel(r.model, r.model_version);
    this.last = r;
    const sub = {
      fake: 'The voice shows signs of text-to-speech synthesis.',
      no_speech: 'Silence or sound too faint to judge: nothing was scored. Try a recording with someone speaking.',
    }[r.verdict] || 'No sign of synthesis found by this model.';
    this.verdict.className = `verdict ${verdictClass(r.verdict)}`;
    this.verdict.replaceChildren(
      el('span', { class: 'tag', text: verdictTag(r.verdict) }),
      el('strong', { class: 'headline', text: headline(r.verdict) }),
      el('span', { class: 'sub', text: sub }),
    );
    if (r.verdict === 'no_speech') this.hideScore();
    else this.showScore(r.fake_score, r.threshold, 'Fake score');
    this.root.querySelector('.note')?.remove();
    if (Number.isFinite(r.duration_seconds) && r.duration_seconds < 2) {
      this.scoreText.after(el('p', { class: 'note', role: 'note', text:
        `Only ${r.duration_seconds.toFixed(2)} s of audio: the model looks at 2-second windows, so this one was padded ` +
        'with silence and the verdict is less reliable. A few seconds of speech give a better answer.' }));
    }
    if (Array.isArray(r.segments) && (r.segments.length || !this.live)) {
      this.segments = r.segments;
      this.tbody.replaceChildren(...r.segments.map((s) => this.row(s)));
    }
    const segs = this.segments.length;
    const t = r.timings || {};
    const total = t.total_ms ?? t.total ?? null;
    this.details.textContent = [
      `${segs} ${this.live ? 'window' : 'segment'}${segs === 1 ? '' : 's'}`,
      Number.isFinite(r.duration_seconds) ? `${r.duration_seconds.toFixed(2)} s of audio` : null,
      total != null && !this.live ? `answered in ${Number(total).toFixed(0)} ms` : null,
      r.request_id ? `request ${r.request_id}` : null,
    ].filter(Boolean).join(' · ');
    this.redraw();
  }

  row(s) {
    const thr = this.thresholdOr();
    const quiet = s.verdict === 'no_speech';
    return el(
      'tr',
      {
        class: 'seg-row',
        'data-index': s.index,
        'data-start': s.start_seconds,
        'data-end': s.end_seconds,
        'data-fake-score': String(s.fake_score),
        'data-verdict': s.verdict,
      },
      el('td', { text: String(s.index) }),
      el('td', {}, el('button', {
        type: 'button',
        class: 'link',
        text: `${fmtTime(s.start_seconds)}–${fmtTime(s.end_seconds)}`,
        'aria-label': `Play from ${fmtTime(s.start_seconds)}`,
        onclick: () => playFrom(s.start_seconds),
      })),
      el('td', {}, el('span', { class: 'chip', style: `background:${segColor(s, thr, 0.9)}` }), quiet ? '—' : fmt3(s.fake_score)),
      el('td', {}, el('span', { class: `pill ${verdictClass(s.verdict)}`, text: verdictTag(s.verdict) })),
    );
  }

  duration() {
    const c = state.clip;
    // The clip's own length; segments past it (a zero-padded tail) are clipped when drawn.
    let d = c && Number.isFinite(c.duration) ? c.duration : 0;
    if (c && c.live && c.rate) d = Math.max(d, c.length / c.rate);
    if (!d) for (const s of this.segments) d = Math.max(d, s.end_seconds);
    return Math.max(d, 0.001);
  }

  seekFromClick(e) {
    const rect = this.wave.getBoundingClientRect();
    playFrom(((e.clientX - rect.left) / rect.width) * this.duration());
  }

  redraw() {
    const canvas = this.canvas;
    const w = this.wave.clientWidth;
    const h = this.wave.clientHeight;
    if (!w || !h) return;
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    const g = canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const dur = this.duration();
    const x = (t) => (t / dur) * w;
    const strip = 12;
    const top = h - strip;
    const thr = this.thresholdOr();
    // Timeline: each segment owns the time from its start to the next one's start.
    const segs = [...this.segments].sort((a, b) => a.start_seconds - b.start_seconds);
    // Time no segment covers (a short tail, or audio still arriving) stays grey: not judged.
    if (segs.length) {
      g.fillStyle = UNJUDGED_COLOR;
      g.fillRect(0, top + 2, w, strip - 2);
    }
    segs.forEach((s, i) => {
      const end = i + 1 < segs.length ? Math.min(s.end_seconds, segs[i + 1].start_seconds) : s.end_seconds;
      const x0 = x(s.start_seconds);
      const x1 = Math.min(w, x(end));
      g.fillStyle = segColor(s, thr, 0.16);
      g.fillRect(x0, 0, x1 - x0, top);
      g.fillStyle = segColor(s, thr);
      g.fillRect(x0, top + 2, Math.max(1, x1 - x0 - 1), strip - 2);
    });
    // Waveform (min/max per pixel column).
    const c = state.clip;
    const samples = c && c.samples;
    const n = c && c.live ? c.length : samples ? samples.length : 0;
    const mid = top / 2;
    g.strokeStyle = '#c9ced6';
    g.beginPath();
    g.moveTo(0, mid);
    g.lineTo(w, mid);
    g.stroke();
    if (samples && n && c.rate) {
      g.fillStyle = '#334155';
      const perPx = (dur * c.rate) / w;
      for (let px = 0; px < w; px++) {
        const a = Math.floor(px * perPx);
        const b = Math.min(n, Math.floor((px + 1) * perPx));
        if (a >= n) break;
        let lo = 1;
        let hi = -1;
        for (let i = a; i < Math.max(b, a + 1); i++) {
          const v = samples[i];
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
        const y0 = mid - Math.min(1, hi) * (mid - 2);
        const y1 = mid - Math.max(-1, lo) * (mid - 2);
        g.fillRect(px, y0, 1, Math.max(1, y1 - y0));
      }
    } else if (!segs.length) {
      g.fillStyle = '#64748b';
      g.font = '13px system-ui, sans-serif';
      g.fillText(this.root.dataset.state === 'error' ? 'No waveform' : 'Loading waveform…', 10, mid - 6);
    }
    updateCursor();
  }
}

function errorBox(err, live = false) {
  return el(
    'div',
    { class: 'error', role: 'alert', 'data-error-name': err.name, 'data-error-code': err.code },
    el('strong', { class: 'error-title', text: friendly(err, live) }),
    el('p', { class: 'error-message', text: err.message || '' }),
    el('p', { class: 'error-meta' }, el('code', { class: 'error-name', text: err.name }), err.code ? ` · ${err.code}` : ''),
  );
}

// ---------- playback ----------

function playFrom(t) {
  if (!ui.audio.src) return;
  ui.audio.currentTime = Math.max(0, t);
  ui.audio.play().catch(() => {});
}

function updateCursor() {
  const t = ui.audio.currentTime || 0;
  const show = !!ui.audio.src && (t > 0 || !ui.audio.paused);
  for (const card of state.cards.values()) {
    card.cursor.hidden = !show;
    if (show) card.cursor.style.left = `${Math.min(100, (t / card.duration()) * 100)}%`;
  }
}

function tick() {
  updateCursor();
  if (!ui.audio.paused) requestAnimationFrame(tick);
}

ui.play.addEventListener('click', () => {
  if (ui.audio.paused) ui.audio.play().catch(() => {});
  else ui.audio.pause();
});
ui.audio.addEventListener('play', () => {
  ui.play.textContent = 'Pause';
  requestAnimationFrame(tick);
});
ui.audio.addEventListener('pause', () => {
  ui.play.textContent = 'Play';
  updateCursor();
});
ui.audio.addEventListener('ended', () => {
  ui.play.textContent = 'Play';
});
ui.audio.addEventListener('seeked', updateCursor);

// ---------- live recording over the WebSocket ----------

async function startRecording() {
  if (!navigator.mediaDevices || !window.AudioWorkletNode) {
    setStatus('This browser cannot record here (it needs a secure page: https or localhost).', 'bad');
    return;
  }
  const { name, version } = selected();
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (e) {
    setStatus(`The microphone is not available: ${e.message}`, 'bad');
    return;
  }
  const ctx = new AudioContext();
  try {
    await ctx.audioWorklet.addModule('/pcm-worklet.js');
  } catch (e) {
    for (const t of stream.getTracks()) t.stop();
    ctx.close().catch(() => {});
    throw e;
  }
  const source = ctx.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(ctx, 'pcm-capture', { numberOfOutputs: 1, outputChannelCount: [1] });
  const mute = ctx.createGain();
  mute.gain.value = 0;
  source.connect(node);
  node.connect(mute).connect(ctx.destination);

  const clip = { name: 'Live recording', blob: null, samples: new Float32Array(ctx.sampleRate * 30), length: 0,
    rate: ctx.sampleRate, duration: NaN, live: true, recording: true };
  resetClip(clip);
  const card = cardFor(`${name}|${version}`, name, version, true);
  card.listening();
  card.redraw();

  const q = new URLSearchParams();
  const key = apiKey();
  if (key) q.set('api_key', key);
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}/v1/stream${q.toString() ? `?${q}` : ''}`);
  ws.binaryType = 'arraybuffer';
  const rec = { ctx, stream, node, ws, clip, card, queue: [], started: performance.now(), ended: false, done: false, timer: 0 };
  state.rec = rec;
  setRecordButton(true);
  setStatus('Recording: speak now. Window verdicts appear every second after the first two seconds.');

  ws.onopen = () => {
    rec.opened = true;
    ws.send(JSON.stringify({ format: 'f32le', sample_rate: ctx.sampleRate, channels: 1, step_seconds: 1.0, model: name, version }));
    for (const b of rec.queue) ws.send(b);
    rec.queue = [];
  };
  ws.onmessage = (e) => onStreamMessage(rec, e.data);
  ws.onerror = () => {};
  ws.onclose = (e) => {
    if (!rec.done) {
      rec.done = true;
      if (rec.card.root.dataset.state !== 'error') {
        const never = !rec.opened;
        rec.card.error({ name: never ? 'connection_failed' : 'connection_closed', code: String(e.code),
          message: e.reason || (never
            ? 'The live connection to /v1/stream could not be opened (is an API key needed?).'
            : 'The live connection closed before a summary arrived.') });
        setStatus('The live connection closed early.', 'bad');
      }
      finishRecording(rec);
    }
  };

  node.port.onmessage = (e) => {
    const m = e.data;
    if (m.type === 'pcm') {
      appendSamples(clip, m.pcm);
      ui.recTime.textContent = clockTime(clip.length / clip.rate);
      ui.level.style.width = `${Math.min(100, Math.sqrt(m.peak) * 100)}%`;
      if (rec.ended) return;
      if (ws.readyState === WebSocket.OPEN) ws.send(m.pcm.buffer);
      else if (ws.readyState === WebSocket.CONNECTING) rec.queue.push(m.pcm.buffer);
    } else if (m.type === 'flushed' && rec.onFlushed) {
      rec.onFlushed();
    }
  };
  rec.timer = setInterval(() => card.redraw(), 250);
}

function appendSamples(clip, pcm) {
  if (clip.length + pcm.length > clip.samples.length) {
    const grown = new Float32Array(Math.max(clip.samples.length * 2, clip.length + pcm.length));
    grown.set(clip.samples.subarray(0, clip.length));
    clip.samples = grown;
  }
  clip.samples.set(pcm, clip.length);
  clip.length += pcm.length;
}

function onStreamMessage(rec, data) {
  if (typeof data !== 'string') return;
  let m;
  try {
    m = JSON.parse(data);
  } catch {
    return;
  }
  if (m.type === 'segment') {
    rec.card.addWindow(m);
    const n = rec.card.segments.length;
    setStatus(m.verdict === 'no_speech'
      ? `Window ${n} (${fmtTime(m.start_seconds)}–${fmtTime(m.end_seconds)}): no speech (silence or too faint).`
      : `Window ${n} (${fmtTime(m.start_seconds)}–${fmtTime(m.end_seconds)}): ${m.verdict === 'fake' ? 'synthetic' : 'real'}, score ${fmt3(m.fake_score)}.`);
  } else if (m.type === 'summary') {
    rec.done = true;
    rec.card.result(m);
    setStatus(`Recording: ${resultStatus(m)}`);
    finishRecording(rec);
    rec.ws.close(1000);
  } else if (m.type === 'error') {
    rec.done = true;
    const err = m.error || { name: 'stream_error', message: 'the server reported an error' };
    rec.card.error(err);
    setStatus(`${friendly(err, true)} (${err.name}).`, 'bad');
    finishRecording(rec);
  }
}

/** Stop pressed: flush the worklet, send the rest and `end`, wait for the summary. */
function stopRecording() {
  const rec = state.rec;
  if (!rec || rec.ended) return;
  rec.ended = true;
  ui.record.disabled = true;
  setStatus('Finishing: waiting for the summary…');
  rec.card.root.dataset.state = 'finishing';
  rec.onFlushed = () => {
    rec.onFlushed = null;
    const end = () => {
      if (rec.ws.readyState === WebSocket.OPEN) rec.ws.send(JSON.stringify({ type: 'end' }));
    };
    // Whatever is still queued (socket not yet open) goes first, then `end`.
    if (rec.ws.readyState === WebSocket.CONNECTING) {
      rec.ws.addEventListener('open', () => setTimeout(end, 0));
    } else end();
    stopCapture(rec);
  };
  // The 'pcm' chunk the flush produces is sent before 'flushed' arrives.
  const last = rec.node.port.onmessage;
  rec.node.port.onmessage = (e) => {
    if (e.data.type === 'pcm') {
      appendSamples(rec.clip, e.data.pcm);
      if (rec.ws.readyState === WebSocket.OPEN) rec.ws.send(e.data.pcm.buffer);
      else if (rec.ws.readyState === WebSocket.CONNECTING) rec.queue.push(e.data.pcm.buffer);
    } else last(e);
  };
  rec.node.port.postMessage('stop');
}

function stopCapture(rec) {
  if (rec.captureStopped) return;
  rec.captureStopped = true;
  clearInterval(rec.timer);
  for (const t of rec.stream.getTracks()) t.stop();
  rec.ctx.close().catch(() => {});
  ui.level.style.width = '0';
}

function finishRecording(rec) {
  stopCapture(rec);
  const clip = rec.clip;
  clip.recording = false;
  clip.duration = clip.length / clip.rate;
  clip.samples = clip.samples.subarray(0, clip.length);
  if (state.clip === clip && clip.length) {
    clip.blob = wavBlob(clip.samples, clip.rate);
    setPlayable(clip.blob);
  }
  if (state.rec === rec) state.rec = null;
  setRecordButton(false);
  renderClipMeta();
  renderCompare();
  rec.card.redraw();
}

function setRecordButton(recording) {
  ui.record.disabled = false;
  ui.record.classList.toggle('recording', recording);
  ui.record.setAttribute('aria-pressed', recording ? 'true' : 'false');
  ui.record.querySelector('.label').textContent = recording ? 'Stop' : 'Start recording';
  if (!recording) ui.recTime.textContent = '0:00';
}

/** 16-bit PCM WAV of a mono recording (for playback and for re-running on another version). */
function wavBlob(samples, rate) {
  const buf = new ArrayBuffer(44 + samples.length * 2);
  const v = new DataView(buf);
  const str = (o, s) => [...s].forEach((ch, i) => v.setUint8(o + i, ch.charCodeAt(0)));
  str(0, 'RIFF');
  v.setUint32(4, 36 + samples.length * 2, true);
  str(8, 'WAVE');
  str(12, 'fmt ');
  v.setUint32(16, 16, true);
  v.setUint16(20, 1, true);
  v.setUint16(22, 1, true);
  v.setUint32(24, rate, true);
  v.setUint32(28, rate * 2, true);
  v.setUint16(32, 2, true);
  v.setUint16(34, 16, true);
  str(36, 'data');
  v.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    v.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([buf], { type: 'audio/wav' });
}

// ---------- model card ----------

function inline(text) {
  const esc = text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return esc
    .replace(/`([^`]+)`/g, '<code>$1</code>')
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>')
    .replace(/\[([^\]]+)\]\((https?:\/\/[^)\s]+)\)/g, '<a href="$2" rel="noopener">$1</a>')
    .replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, '$1');
}

/** A small Markdown subset: headings, paragraphs, lists, code fences, pipe tables. */
function renderMarkdown(md) {
  const out = [];
  const lines = md.replace(/\r/g, '').split('\n');
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (/^```/.test(line)) {
      const code = [];
      for (i++; i < lines.length && !/^```/.test(lines[i]); i++) code.push(lines[i]);
      i++;
      const pre = el('pre', {}, el('code', { text: code.join('\n') }));
      out.push(pre);
    } else if (/^#{1,6}\s/.test(line)) {
      const level = Math.min(6, line.match(/^#+/)[0].length + 2);
      const h = el(`h${Math.min(level, 6)}`);
      h.innerHTML = inline(line.replace(/^#+\s*/, ''));
      out.push(h);
      i++;
    } else if (/^\s*\|/.test(line)) {
      const rows = [];
      for (; i < lines.length && /^\s*\|/.test(lines[i]); i++) rows.push(lines[i]);
      const cells = (r) => r.trim().replace(/^\||\|$/g, '').split('|').map((c) => c.trim());
      const table = el('table', { class: 'md-table' });
      rows.forEach((r, k) => {
        if (/^\s*\|?[\s:|-]+\|?\s*$/.test(r)) return;
        const tr = el('tr');
        for (const c of cells(r)) {
          const td = el(k === 0 ? 'th' : 'td');
          td.innerHTML = inline(c);
          tr.append(td);
        }
        table.append(tr);
      });
      out.push(el('div', { class: 'table-wrap' }, table));
    } else if (/^\s*([-*]|\d+\.)\s/.test(line)) {
      const list = el(/^\s*\d+\./.test(line) ? 'ol' : 'ul');
      for (; i < lines.length && /^\s*([-*]|\d+\.)\s/.test(lines[i]); i++) {
        let text = lines[i].replace(/^\s*([-*]|\d+\.)\s/, '');
        while (i + 1 < lines.length && /^\s{2,}\S/.test(lines[i + 1]) && !/^\s*([-*]|\d+\.)\s/.test(lines[i + 1])) {
          text += ` ${lines[++i].trim()}`;
        }
        const li = el('li');
        li.innerHTML = inline(text);
        list.append(li);
      }
      out.push(list);
    } else if (line.trim() === '') {
      i++;
    } else {
      const para = [];
      for (; i < lines.length && lines[i].trim() && !/^(```|#{1,6}\s|\s*\||\s*([-*]|\d+\.)\s)/.test(lines[i]); i++) para.push(lines[i]);
      const p = el('p');
      p.innerHTML = inline(para.join(' '));
      out.push(p);
    }
  }
  return out;
}

$('#model-card-link').addEventListener('click', async (e) => {
  if (!ui.dialog.showModal) return; // no <dialog>: follow the link
  e.preventDefault();
  ui.cardBody.replaceChildren(el('p', { text: 'Loading…' }));
  ui.dialog.showModal();
  try {
    const resp = await fetch('/model-card', { headers: authHeaders() });
    if (!resp.ok) throw new Error(`${resp.status} ${resp.statusText}`);
    ui.cardBody.replaceChildren(...renderMarkdown(await resp.text()));
  } catch (err) {
    ui.cardBody.replaceChildren(el('p', { text: `The model card could not be loaded: ${err.message}` }));
  }
});
$('#card-close').addEventListener('click', () => ui.dialog.close());

// ---------- wiring ----------

ui.file.addEventListener('change', () => {
  const f = ui.file.files && ui.file.files[0];
  handleFile(f);
  ui.file.value = '';
});

for (const ev of ['dragenter', 'dragover']) {
  ui.drop.addEventListener(ev, (e) => {
    e.preventDefault();
    ui.drop.classList.add('over');
  });
}
for (const ev of ['dragleave', 'dragend']) ui.drop.addEventListener(ev, () => ui.drop.classList.remove('over'));
ui.drop.addEventListener('drop', (e) => {
  e.preventDefault();
  ui.drop.classList.remove('over');
  const f = e.dataTransfer && e.dataTransfer.files[0];
  if (f) handleFile(f);
});
// A file dropped elsewhere on the page is analysed too, never opened by the browser.
window.addEventListener('dragover', (e) => e.preventDefault());
window.addEventListener('drop', (e) => {
  e.preventDefault();
  const f = e.dataTransfer && e.dataTransfer.files[0];
  if (f) handleFile(f);
});

ui.record.addEventListener('click', () => {
  if (state.rec) stopRecording();
  else startRecording().catch((e) => {
    setStatus(`Recording failed: ${e.message}`, 'bad');
    setRecordButton(false);
    state.rec = null;
  });
});

$('#key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  loadModels();
});

ui.select.addEventListener('change', () => {
  renderModelInfo();
  // With a clip on screen, a new version runs on the same clip and appears beside the others.
  const { name, version } = selected();
  const c = state.clip;
  if (c && c.blob && !c.recording && !state.cards.has(`${name}|${version}`)) classify(name, version);
});

try {
  ui.key.value = sessionStorage.getItem('vericlip-api-key') || '';
} catch {
  /* storage unavailable */
}
let keyTimer = 0;
ui.key.addEventListener('input', () => {
  try {
    sessionStorage.setItem('vericlip-api-key', ui.key.value.trim());
  } catch {
    /* storage unavailable */
  }
  clearTimeout(keyTimer);
  keyTimer = setTimeout(loadModels, 400);
});

loadModels();
