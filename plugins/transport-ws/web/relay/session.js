// What app.js shares with extension modules (the call UI, call.js, added by the signaling
// work): the loaded identity, the authenticated WebSocket, decrypted messages of kinds the
// chat view does not show, and the <section id="call"> of index.html to render into.
//
//   import { session } from './session.js';
//   session.onReady(({ identity, socket }) => {
//     socket.on('authed', …); socket.send({ type: 'join_room', … });   // see socket.js
//   });
//   session.onMessage((message, sender) => { if (message.type === 'call_event') … });

const readyFns = [];
const messageFns = [];

export const session = {
  identity: null, // identity.js loadIdentity() result (keys are non-extractable)
  socket: null, // socket.js RelaySocket, shared; authenticated once it emits 'authed'
  isReady: false,

  onReady(fn) {
    if (this.isReady) fn(this);
    else readyFns.push(fn);
  },
  onMessage(fn) {
    messageFns.push(fn);
  },

  // Called by app.js.
  ready() {
    this.isReady = true;
    for (const fn of readyFns.splice(0)) fn(this);
  },
  message(m, sender) {
    for (const fn of messageFns) fn(m, sender);
  },
};
