// The client's actions: messages, files, events, posted to the simulator.

import { t } from './strings.js';
import { api, enc } from './api.js';
import { cleanError, toast } from './helpers.js';
import { state } from './state.js';
import { kick } from './polling.js';

const MAX_UPLOAD = 10 << 20;

/** act runs a client action (subscribe, messages, scan…) and polls at once. */
export async function act(kind, body) {
  const openid = state.openid;
  if (!openid) return null;
  const p = api('POST', `/clients/${enc(openid)}/${kind}`, body ?? {});
  setTimeout(kick, 120); // the entry is logged before the callback: show it while it is in flight
  try {
    return await p;
  } catch (e) {
    toast(cleanError(e.message));
    return null;
  } finally {
    kick();
  }
}

export function sendText(text) {
  if (text.trim() === '') return;
  act('messages', { msgtype: 'text', content: text });
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).replace(/^data:[^,]*,/, ''));
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}

export async function sendFile(file, msgtype) {
  if (!file) return;
  if (file.size > MAX_UPLOAD) {
    toast(t('fileTooBig'));
    return;
  }
  const data = await readBase64(file);
  const body = { msgtype, data };
  if (msgtype === 'file') body.title = file.name;
  act('messages', body);
}
