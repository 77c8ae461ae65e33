// Polling the simulator: once a second in a chat, every three seconds on
// the client list, at once after an action.

import { $ } from './lib/dom.js';
import { ApiError } from './lib/api.js';
import { toast } from './helpers.js';
import { state } from './state.js';
import { go } from './routing.js';
import { refreshClients } from './clients.js';
import { refreshChat } from './chat.js';

const POLL_CHAT_MS = 1000;
const POLL_LIST_MS = 3000;

let pollTimer = 0;
let polling = false;
let pollAgain = false;
export let pollGen = 0; // bumped when the chat changes; stale answers are dropped

function schedule(ms) {
  clearTimeout(pollTimer);
  pollTimer = setTimeout(poll, ms);
}

/** kick polls now (or right after the poll in flight). */
export function kick() {
  if (polling) pollAgain = true;
  else schedule(0);
}

async function poll() {
  if (polling) {
    pollAgain = true;
    return;
  }
  polling = true;
  const gen = pollGen;
  try {
    if (state.screen === 'chat') await refreshChat(gen);
    else await refreshClients();
    $('offline').hidden = true;
  } catch (e) {
    if (!(e instanceof ApiError) || e.status === 0) $('offline').hidden = false;
    else if (e.status === 404 && state.screen === 'chat') {
      toast(e.message);
      go(state.appid);
    }
  } finally {
    polling = false;
    if (pollAgain) {
      pollAgain = false;
      schedule(0);
    } else {
      schedule(state.screen === 'chat' ? POLL_CHAT_MS : POLL_LIST_MS);
    }
  }
}

/** newPollGeneration drops the answers of polls in flight (the screen changed). */
export function newPollGeneration() {
  pollGen++;
}
