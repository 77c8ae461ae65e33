// The "+" panel under the composer.

import { $ } from './lib/dom.js';
import { scrollToBottom } from './chat.js';

export function openPlus() {
  $('plus-panel').hidden = false;
  $('plus').setAttribute('aria-expanded', 'true');
  $('act-album').focus();
  scrollToBottom();
}

export function closePlus() {
  $('plus-panel').hidden = true;
  $('plus').setAttribute('aria-expanded', 'false');
}
