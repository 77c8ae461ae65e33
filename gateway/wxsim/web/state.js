// What the page shows now: the accounts, the client list, the open chat.

export const state = {
  accounts: [],
  appid: '',
  clients: [],
  clientsKey: '',
  screen: 'clients',
  openid: '',
  info: null,
  entries: new Map(), // seq → entry
  nodes: new Map(), // seq → <li>
  lastSeq: 0,
  lastTime: 0, // time of the last rendered entry, for separators
};

export const account = () => state.accounts.find((a) => a.appid === state.appid);
