// DistAppGuard console. Plain JavaScript, no build step, no third-party code: served as is by
// the aggregator (air-gapped sites). Every text from the store goes into the page as a text
// node (never as HTML): role labels come from traced programs and are hostile input. The
// server's graphs (Graphviz SVG) are parsed as XML and only known drawing elements are kept.
'use strict';

(() => {
  const TOKEN_KEY = 'distappguard.token';
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const main = document.getElementById('main');
  const statusLine = document.getElementById('status');
  let renderSeq = 0;

  // ------------------------------------------------------------------ DOM from text

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    add(e, children);
    return e;
  }

  function add(parent, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      parent.append(c instanceof Node ? c : String(c));
    }
  }

  function svgEl(tag, attrs, ...children) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, String(v));
    }
    add(e, children);
    return e;
  }

  function table(headers, rows, cls) {
    return el('table', { class: cls }, el('thead', {}, el('tr', {}, headers.map((h) => el('th', {}, h)))), el('tbody', {}, rows));
  }

  // ------------------------------------------------------------------ formatting

  const pad = (n, w = 2) => String(n).padStart(w, '0');
  function time(ms) {
    if (ms === null || ms === undefined) return '—';
    const d = new Date(ms);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  }
  function duration(ms) {
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const s = ms / 1000;
    if (s < 120) return `${+s.toFixed(1)} s`;
    if (s < 7200) return `${Math.round(s / 60)} min`;
    if (s < 172800) return `${Math.round(s / 3600)} h`;
    return `${Math.round(s / 86400)} d`;
  }
  const ago = (ms, now) => (ms === null || ms === undefined ? '—' : `${duration(Math.max(0, now - ms))} ago`);
  const int = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString('en-US'));
  const bytes = (n) => `${int(n)} B`;
  const num = (n, d = 3) => (typeof n === 'number' && Number.isFinite(n) ? n.toFixed(d) : '—');
  const badge = (text, kind) => el('span', { class: `badge ${kind}` }, text);
  const edgeText = (e) => `${e.src} → ${e.dst}`;

  // ------------------------------------------------------------------ API

  class AuthNeeded extends Error {}

  async function api(path, opts = {}) {
    const headers = { accept: 'application/json' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.authorization = `Bearer ${token}`;
    let body;
    if (opts.body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['x-distappguard-console'] = '1';
      body = JSON.stringify(opts.body);
    }
    const r = await fetch(path, { method: opts.method || 'GET', headers, body, credentials: 'same-origin', cache: 'no-store' });
    if (r.status === 401) {
      showLogin(token ? 'The aggregator refused that token.' : '');
      throw new AuthNeeded();
    }
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
    return data;
  }

  function showLogin(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById('login').hidden = false;
    document.getElementById('login-error').textContent = message;
    main.hidden = true;
    document.getElementById('token').focus();
  }

  document.getElementById('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = document.getElementById('token');
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = '';
    document.getElementById('login').hidden = true;
    main.hidden = false;
    render();
  });

  document.getElementById('logout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin('');
  });

  // ------------------------------------------------------------------ the server's SVG, kept to drawing

  const SVG_ELEMENTS = new Set(['svg', 'g', 'title', 'desc', 'polygon', 'polyline', 'path', 'ellipse', 'circle', 'rect', 'line', 'text', 'tspan', 'defs']);

  function safeSvg(text) {
    const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
    const root = doc.documentElement;
    if (root.namespaceURI !== SVG_NS || root.localName !== 'svg' || doc.getElementsByTagName('parsererror').length > 0) throw new Error('the graph could not be read');
    const clean = (node) => {
      for (const a of [...node.attributes]) {
        const name = a.name.toLowerCase();
        if (name.startsWith('on') || name === 'style' || name.endsWith('href')) node.removeAttribute(a.name);
      }
      for (const c of [...node.children]) {
        if (c.namespaceURI !== SVG_NS || !SVG_ELEMENTS.has(c.localName)) c.remove();
        else clean(c);
      }
    };
    clean(root);
    root.setAttribute('class', 'msdeg');
    return document.importNode(root, true);
  }

  function graphBlock(data) {
    return el('figure', { id: 'graph', class: 'graph' },
      el('div', { class: 'graph-scroll' }, safeSvg(data.svg)),
      el('figcaption', {},
        data.dropped > 0 ? `${int(data.edges - data.dropped)} of ${int(data.edges)} edges drawn (the highlighted ones and the largest). ` : `${int(data.edges)} edges. `,
        el('span', { class: 'key red' }, 'red'), ': explains the alert, observed bytes (expected); ',
        el('span', { class: 'key red' }, 'red dashed'), ': never seen before; ',
        el('span', { class: 'key red' }, 'red dotted'), ': expected but absent; red box: the microservice that scores worst.'));
  }

  // ------------------------------------------------------------------ views

  async function agentsView(now) {
    const agents = await api('/api/v1/agents');
    const rows = agents.map((a) => {
      const health = a.health === 'ok' ? badge(a.connected === null ? 'active' : 'connected', 'ok') : badge(a.health, a.health === 'silent' ? 'warn' : 'bad');
      let model = 'no host model';
      if (a.expectedModel !== null) {
        const acked = a.modelVersion === String(a.expectedModel);
        model = el('span', {}, a.modelVersion ? `v${a.modelVersion}` : 'none loaded', ' ', acked ? badge('current', 'ok') : badge(`expected v${a.expectedModel}`, 'warn'),
          a.modelAckedAt ? el('span', { class: 'muted' }, ` acked ${ago(a.modelAckedAt, now)}`) : null);
      } else if (a.modelVersion) model = `v${a.modelVersion} (no active host model)`;
      return el('tr', { 'data-agent': a.agentId },
        el('td', {}, a.agentId), el('td', {}, a.host), el('td', {}, a.app), el('td', {}, health),
        el('td', { title: time(a.lastSeen) }, ago(a.lastSeen, now)), el('td', {}, time(a.firstSeen)), el('td', { class: 'num' }, int(a.lastSeq)),
        el('td', {}, a.agentVersion || '—'), el('td', {}, duration(a.windowMs)), el('td', {}, model));
    });
    return [
      el('h2', {}, 'Agents'),
      agents.length === 0 ? el('p', { class: 'muted' }, 'No agent has connected yet.') :
        table(['Agent', 'Host', 'App', 'Health', 'Last seen', 'First seen', 'Last seq', 'Version', 'Window', 'Model'], rows, 'agents'),
      el('p', { class: 'muted' }, 'Silent: nothing received for three windows (at least 30 s). Model: the host model the agent acknowledged loading, against the active one.'),
    ];
  }

  const SEVERITY_RANK = { low: 1, medium: 2, high: 3 };

  function timeline(incidents, alerts) {
    if (incidents.length === 0) return null;
    const W = 1000;
    const H = 70;
    const from = Math.min(...incidents.map((i) => i.start));
    const to = Math.max(...incidents.map((i) => i.end));
    const span = Math.max(to - from, 1);
    const x = (t) => 10 + ((t - from) / span) * (W - 20);
    const sev = new Map();
    for (const a of alerts) sev.set(a.incidentId, Math.max(sev.get(a.incidentId) || 0, SEVERITY_RANK[a.severity] || 0));
    const lanes = [...new Set(incidents.map((i) => `${i.app} ${i.source}`))].sort();
    const laneH = Math.max(8, Math.min(24, (H - 20) / lanes.length));
    const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, class: 'timeline', role: 'img', 'aria-label': 'incidents over time' });
    svg.append(svgEl('line', { x1: 10, x2: W - 10, y1: H - 12, y2: H - 12, class: 'axis' }));
    svg.append(svgEl('text', { x: 10, y: H - 1, class: 'tick' }, time(from)));
    svg.append(svgEl('text', { x: W - 10, y: H - 1, class: 'tick end' }, time(to)));
    for (const i of incidents) {
      const lane = lanes.indexOf(`${i.app} ${i.source}`);
      const level = ['low', 'low', 'medium', 'high'][sev.get(i.id) || 1];
      const r = svgEl('rect', {
        x: x(i.start), y: 4 + lane * laneH, width: Math.max(4, x(i.end) - x(i.start)), height: laneH - 2, class: `incident ${level}`, 'data-incident': i.id,
        onclick: () => (location.hash = `#alerts/incident/${i.id}`),
      }, svgEl('title', {}, `incident ${i.id}: ${i.app} ${i.source}, ${i.alerts} alert(s), ${time(i.start)} → ${time(i.end)}`));
      svg.append(r);
    }
    return svg;
  }

  function why(a) {
    if (a.newEdges > 0 && a.topEdge === null) return `${a.newEdges} never-seen edge(s)`;
    const parts = [];
    if (a.topGroup) parts.push(`${a.topGroup.name} ×${a.topGroup.ratio.toFixed(1)}`);
    if (a.topEdge) parts.push(`${edgeText(a.topEdge)} ${bytes(a.topEdge.observedBytes)} (expected ${bytes(a.topEdge.expectedBytes)})`);
    if (a.newEdges > 0) parts.push(`${a.newEdges} new edge(s)`);
    return parts.join('; ');
  }

  async function alertsView(now, incidentId) {
    const [incidents, alerts] = await Promise.all([
      api('/api/v1/incidents?limit=200'),
      api(incidentId ? `/api/v1/alerts?incident=${encodeURIComponent(incidentId)}` : '/api/v1/alerts?limit=500'),
    ]);
    const incRows = incidents.map((i) => el('tr', { class: String(i.id) === incidentId ? 'selected clickable' : 'clickable', 'data-incident': i.id, onclick: () => (location.hash = `#alerts/incident/${i.id}`) },
      el('td', { class: 'num' }, i.id), el('td', {}, i.app), el('td', {}, i.source), el('td', {}, time(i.start)), el('td', {}, duration(i.end - i.start)),
      el('td', { class: 'num' }, i.alerts), el('td', { class: 'num' }, num(i.maxScore, 2)), el('td', { class: 'num' }, i.newEdges)));
    const alertRows = alerts.map((a) => el('tr', { class: 'clickable', 'data-alert': a.id, onclick: () => (location.hash = `#alert/${a.id}`) },
      el('td', { class: 'num' }, el('a', { href: `#alert/${a.id}` }, a.id)), el('td', { class: 'num' }, a.incidentId), el('td', {}, time(a.windowStart)), el('td', {}, a.app),
      el('td', {}, a.source), el('td', {}, badge(a.severity, a.severity)), el('td', { class: 'num' }, `${num(a.score, 2)} / ${num(a.threshold, 2)}`),
      el('td', {}, a.label ? badge(a.label, a.label) : '—'), el('td', { class: 'why' }, why(a))));
    return [
      el('h2', {}, 'Alerts'),
      timeline(incidents, alerts),
      el('h3', {}, 'Incidents ', el('span', { class: 'muted' }, '(consecutive alerting windows of one application and source)')),
      incidents.length === 0 ? el('p', { class: 'muted' }, 'No incident.') :
        table(['ID', 'App', 'Source', 'Start', 'Length', 'Alerts', 'Max score', 'New edges'], incRows, 'incidents'),
      el('h3', {}, incidentId ? `Alerts of incident ${incidentId} ` : 'Alerts ', incidentId ? el('a', { href: '#alerts' }, '(all)') : null),
      alerts.length === 0 ? el('p', { class: 'muted' }, 'No alert.') :
        table(['ID', 'Incident', 'Window', 'App', 'Source', 'Severity', 'Score / threshold', 'Label', 'Why'], alertRows, 'alerts'),
    ];
  }

  async function alertView(now, id) {
    const a = await api(`/api/v1/alerts/${encodeURIComponent(id)}`);
    const message = el('p', { id: 'label-result', class: 'muted', 'aria-live': 'polite' });
    const labelButton = (label) => el('button', {
      type: 'button', id: `label-${label}`, class: `label-${label}`, disabled: a.label === label,
      onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          const r = await api(`/api/v1/alerts/${encodeURIComponent(a.id)}/label`, { method: 'POST', body: { label } });
          await render();
          const m = document.getElementById('label-result');
          if (m) m.textContent = `Alert ${r.alert.id} labelled ${r.alert.label}` + (r.acceptedEdges > 0 ? `; ${r.acceptedEdges} edge(s) accepted for the next training.` : '.');
        } catch (e) {
          if (!(e instanceof AuthNeeded)) message.textContent = `Not labelled: ${e.message}`;
          ev.target.disabled = false;
        }
      },
    }, label === 'benign' ? 'Label benign' : 'Label malicious');
    const facts = [
      ['Application', a.app], ['Window', `${time(a.windowStart)} + ${duration(a.windowMs)}`], ['Source', a.source],
      ['Severity', badge(a.severity, a.severity)], ['Score', `${num(a.score)} (threshold ${num(a.threshold)})${a.anomalous ? '' : ' — under the threshold: raised for never-seen edges'}`],
      ['Model', a.model ? `${a.model.id} (${a.model.kind}${a.model.active ? ', active' : ''})` : a.modelId !== null ? `agent model v${a.modelId}` : '—'],
      ['Incident', el('a', { href: `#alerts/incident/${a.incidentId}` }, `${a.incidentId}`)],
      ['Window graph', a.window ? `${a.window.hosts.join(', ')} · ${int(a.window.edges)} edges · ${bytes(a.window.bytes)}` : 'not in the store'],
      ['Label', el('span', { id: 'label' }, a.label ? badge(a.label, a.label) : 'none', a.labelledAt ? el('span', { class: 'muted' }, ` ${time(a.labelledAt)}`) : null)],
    ];
    const graph = el('div', { id: 'graph-slot' }, el('p', { class: 'muted' }, 'Drawing the window…'));
    api(`/api/v1/alerts/${encodeURIComponent(a.id)}/graph`)
      .then((g) => graph.replaceChildren(graphBlock(g)))
      .catch((e) => graph.replaceChildren(el('p', { class: 'error' }, e instanceof AuthNeeded ? '' : `No graph: ${e.message}`)));
    const ex = a.explanation;
    return [
      el('p', {}, el('a', { href: '#alerts' }, '← alerts')),
      el('h2', {}, `Alert ${a.id}`),
      el('dl', { class: 'facts' }, facts.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
      el('div', { class: 'actions' }, labelButton('benign'), labelButton('malicious'),
        el('span', { class: 'muted' }, ' Benign: the window may join the training data and its never-seen edges are accepted at the next training.')),
      message,
      el('h3', {}, 'The window ', el('span', { class: 'muted' }, `(${time(a.windowStart)}, ${a.app})`)),
      graph,
      el('h3', {}, 'Microservices'),
      ex.groups.length === 0 ? el('p', { class: 'muted' }, '—') :
        table(['Microservice', '× usual error', 'Error'], ex.groups.map((g) => el('tr', {}, el('td', {}, g.name), el('td', { class: 'num' }, num(g.ratio, 2)), el('td', { class: 'num' }, num(g.error, 4)))), 'groups'),
      el('h3', {}, 'Edges that explain the score ', el('span', { class: 'muted' }, '(the first five are drawn red in the graph)')),
      ex.edges.length === 0 ? el('p', { class: 'muted' }, '—') :
        table(['Edge', 'Kind', 'Observed', 'Expected', 'Error'], ex.edges.map((e, i) => el('tr', { class: i < 5 ? 'explained drawn' : 'explained' },
          el('td', { class: 'edge' }, edgeText(e)), el('td', {}, e.kind), el('td', { class: 'num observed' }, bytes(e.observedBytes)), el('td', { class: 'num expected' }, bytes(e.expectedBytes)), el('td', { class: 'num' }, num(e.error, 4)))), 'edges'),
      el('h3', {}, 'Never-seen edges'),
      ex.newEdges.length === 0 ? el('p', { class: 'muted' }, 'None.') :
        table(['Edge', 'Kind', 'Bytes', 'Calls'], ex.newEdges.map((e) => el('tr', { class: 'new-edge' }, el('td', { class: 'edge' }, edgeText(e)), el('td', {}, e.kind), el('td', { class: 'num' }, bytes(e.bytes)), el('td', { class: 'num' }, int(e.count)))), 'new-edges'),
    ];
  }

  async function windowsView(now) {
    const rows = await api('/api/v1/windows?limit=200');
    return [
      el('h2', {}, 'Windows'),
      rows.length === 0 ? el('p', { class: 'muted' }, 'No window stored yet.') :
        table(['Window', 'App', 'Length', 'Status', 'Hosts', 'Edges', 'Bytes', 'Late', 'Alerts'], rows.map((w) => el('tr', {
          class: 'clickable', onclick: () => (location.hash = `#window/${encodeURIComponent(w.app)}/${w.windowStart}`),
        }, el('td', {}, time(w.windowStart)), el('td', {}, w.app), el('td', {}, duration(w.windowMs)), el('td', {}, w.status), el('td', {}, w.hosts.join(', ')),
          el('td', { class: 'num' }, int(w.edges)), el('td', { class: 'num' }, bytes(w.bytes)), el('td', { class: 'num' }, w.latePartials), el('td', { class: 'num' }, w.alerts || '—'))), 'windows'),
    ];
  }

  async function windowView(now, app, start) {
    const g = await api(`/api/v1/windows/graph?app=${encodeURIComponent(app)}&start=${encodeURIComponent(start)}`);
    return [el('p', {}, el('a', { href: '#windows' }, '← windows')), el('h2', {}, `${app} · ${time(Number(start))}`), graphBlock(g)];
  }

  async function modelsView() {
    const models = await api('/api/v1/models');
    const rows = models.slice().reverse().map((m) => {
      const t = m.training || {};
      const c = m.calibration || {};
      const w = t.windows || {};
      const s = c.scores || {};
      return el('tr', { 'data-model': m.id, class: m.active ? 'active' : '' },
        el('td', { class: 'num' }, m.id), el('td', {}, m.active ? badge('active', 'ok') : ''), el('td', {}, m.app), el('td', {}, m.scope || '(application)'),
        el('td', {}, m.kind), el('td', {}, time(m.createdAt)), el('td', {}, `${time(m.trainFrom)} → ${time(m.trainTo)}`),
        el('td', { class: 'num' }, `${int(m.windows)}`, el('br'), el('span', { class: 'muted' }, `${int(w.train)} / ${int(w.validation)} / ${int(w.calibration)}`)),
        el('td', { class: 'num' }, int(m.features)), el('td', { class: 'num' }, num(m.threshold)),
        el('td', {}, `${c.method || '—'}, target FPR ${c.targetFpr ?? '—'}`, el('br'),
          el('span', { class: 'muted' }, `${int(c.falseAlarms)} of ${int(c.windows)} held-out over; p50 ${num(s.p50, 2)} p99 ${num(s.p99, 2)} max ${num(s.max, 2)}`)),
        el('td', {}, `${int(t.epochs)} epochs (best ${int(t.bestEpoch)})`, el('br'),
          el('span', { class: 'muted' }, `loss ${num(t.loss, 4)} held-out ${num(t.valLoss, 4)} · ${num(t.seconds, 1)} s ${t.backend || ''}`)),
        el('td', { class: 'mono', title: m.sha256 }, m.sha256.slice(0, 12)));
    });
    return [
      el('h2', {}, 'Models'),
      models.length === 0 ? el('p', { class: 'muted' }, 'No model trained yet (distappguard train, or the aggregator\'s learning period).') :
        table(['ID', '', 'App', 'Scope', 'Kind', 'Created', 'Trained on', 'Windows (train / val / cal)', 'Features', 'Threshold', 'Calibration', 'Training', 'sha256'], rows, 'models'),
      el('p', { class: 'muted' }, 'Roll back with distappguard models activate ID on the aggregator host.'),
    ];
  }

  // ------------------------------------------------------------------ routing

  async function status() {
    const s = await api('/api/v1/status');
    statusLine.textContent = `${s.agents} agent(s) · ${s.alerts} alert(s), ${s.unlabelled} unlabelled · ${s.models} model(s) · ${s.auth === 'token' ? 'token' : 'loopback only'}`;
    document.getElementById('logout').hidden = s.auth !== 'token';
    return s;
  }

  async function render() {
    const seq = ++renderSeq;
    const hash = location.hash.replace(/^#/, '') || 'agents';
    const parts = hash.split('/');
    const view = parts[0];
    for (const a of document.querySelectorAll('nav a')) a.classList.toggle('current', a.dataset.view === (view === 'alert' ? 'alerts' : view === 'window' ? 'windows' : view));
    try {
      const s = await status();
      let content;
      if (view === 'alert' && /^\d+$/.test(parts[1] || '')) content = await alertView(s.now, parts[1]);
      else if (view === 'alerts') content = await alertsView(s.now, parts[1] === 'incident' && /^\d+$/.test(parts[2] || '') ? parts[2] : undefined);
      else if (view === 'windows') content = await windowsView(s.now);
      else if (view === 'window' && parts.length === 3 && /^\d+$/.test(parts[2])) content = await windowView(s.now, decodeURIComponent(parts[1]), parts[2]);
      else if (view === 'models') content = await modelsView();
      else content = await agentsView(s.now);
      if (seq !== renderSeq) return;
      main.replaceChildren(...[content].flat(Infinity).filter((c) => c !== null && c !== undefined));
      main.dataset.view = view;
    } catch (e) {
      if (e instanceof AuthNeeded || seq !== renderSeq) return;
      main.replaceChildren(el('p', { class: 'error' }, `Could not load: ${e.message}`));
    }
  }

  window.addEventListener('hashchange', render);
  render();
})();
