// The page's state and a tiny event bus. The relay is the truth: the
// page holds what it fetched from the archive and what the WebSocket
// brought since, keyed by message id and deduplicated by seq.

export const state = {
  me: null, // {id, name, role, csrf, accounts?}
  convs: new Map(), // conv id → summary from GET /api/conversations, kept live
  filter: { status: 'open', employee: '', account: '', q: '' },
  open: null, // the conversation shown
  threads: new Map(), // conv id → Thread
  employees: [], // [{id, name, role}]
  canned: [], // [{id, title, text}]
  live: 'connecting',
  accounts: new Set(), // account ids seen
  // credentialChange is the password change in flight (a promise), if
  // any: its answer carries the new session, and a socket closed as
  // "signed_out" meanwhile must wait for it before asking who we are.
  credentialChange: null,
};

const listeners = new Map();
export function on(ev, fn) {
  if (!listeners.has(ev)) listeners.set(ev, new Set());
  listeners.get(ev).add(fn);
}
export function emit(ev, arg) {
  for (const fn of listeners.get(ev) || []) fn(arg);
}

export const isSupervisor = () => state.me && state.me.role !== 'agent';

// managesAll: supervisors and admins transfer, resolve, reopen and write
// notes in any conversation; compliance officers only read.
export const managesAll = () => !!state.me && (state.me.role === 'supervisor' || state.me.role === 'admin');

export function employeeName(id) {
  if (!id) return '';
  const e = state.employees.find((x) => x.id === id);
  return (e && e.name) || id;
}

// Thread is what the page holds of one conversation.
export class Thread {
  constructor(conv) {
    this.conv = conv;
    this.byID = new Map(); // message id → message (archived, or local while pending)
    this.seqs = new Set();
    this.minSeq = 0; // lowest archived seq held
    this.maxSeq = 0; // highest archived seq held
    this.complete = false; // holds seq 1: nothing older to load
    this.loaded = false;
    this.loading = false;
    this.statuses = new Map(); // message id → latest delivery status
    this.window = null; // GET /window
    this.readSent = 0; // highest seq reported read
    this.touched = Date.now();
    this.version = 0; // bumped on every change, for renderers
  }

  // add stores an archived or local message; false when it is already
  // held (same seq), so a frame seen twice changes nothing.
  add(m) {
    if (m.seq) {
      if (this.seqs.has(m.seq)) return false;
      this.seqs.add(m.seq);
      this.minSeq = this.minSeq ? Math.min(this.minSeq, m.seq) : m.seq;
      this.maxSeq = Math.max(this.maxSeq, m.seq);
      if (m.seq === 1) this.complete = true;
    }
    const prev = this.byID.get(m.id);
    if (prev && prev.local && m.seq) {
      // The archived copy of a message sent from this page: keep its
      // preview and its failure, if the relay had answered first.
      m.preview = prev.preview;
      if (!this.statuses.has(m.id) && prev.state && prev.state !== 'pending') {
        this.statuses.set(m.id, { state: prev.state, reason: prev.reason });
      }
    } else if (prev && prev.seq && !m.seq) {
      return false; // never replace an archived message by a local one
    }
    this.byID.set(m.id, m);
    this.version++;
    return true;
  }

  remove(id) {
    if (this.byID.delete(id)) this.version++;
  }

  setStatus(st) {
    const cur = this.statuses.get(st.message_id);
    // Statuses arrive in order per message, except that a replayed
    // "sending" must not hide a settled state.
    if (cur && settled(cur.state) && !settled(st.state)) return false;
    this.statuses.set(st.message_id, st);
    this.version++;
    return true;
  }

  sorted() {
    return [...this.byID.values()].sort((a, b) => {
      const as = a.seq || Number.MAX_SAFE_INTEGER;
      const bs = b.seq || Number.MAX_SAFE_INTEGER;
      return as - bs || (a.localAt || 0) - (b.localAt || 0);
    });
  }

  lastInboundSeq() {
    let s = 0;
    for (const m of this.byID.values()) if (m.seq && m.direction === 'in' && m.seq > s) s = m.seq;
    return s;
  }
}

export const settled = (s) => s === 'sent' || s === 'failed' || s === 'unknown';

export function thread(conv) {
  let th = state.threads.get(conv);
  if (!th) {
    th = new Thread(conv);
    state.threads.set(conv, th);
    // Hold at most 30 conversations; forget the least recently opened.
    if (state.threads.size > 30) {
      const old = [...state.threads.values()].filter((x) => x.conv !== state.open).sort((a, b) => a.touched - b.touched)[0];
      if (old) state.threads.delete(old.conv);
    }
  }
  return th;
}

// deliveryOf is what the page knows of an outbound message's delivery:
// a status frame, the answer to its send, or what the archive says.
export function deliveryOf(th, m) {
  const st = th.statuses.get(m.id);
  if (st) return st;
  if (m.local) return { state: m.state || 'pending', reason: m.reason, errcode: m.errcode };
  if (m.status && m.status.state) return m.status;
  if (m.state) return { state: m.state, reason: m.reason, errcode: m.errcode };
  return null;
}
