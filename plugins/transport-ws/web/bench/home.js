// parley bench: the start page. Makes a room id, a key and an admin token in this browser
// and opens the room with them in the link (the room exists once its first member joins).

import { newAdminToken, newKey, newRoomId, roomUrl } from '/crypto.js';

const $ = (id) => document.getElementById(id);

function main() {
  const button = $('create-bench');
  try {
    if (!globalThis.nacl?.randomBytes) throw new Error('the encryption library did not load');
    globalThis.nacl.randomBytes(1); // throws without a secure random source
  } catch (err) {
    const e = $('home-error');
    e.textContent = `This browser cannot create a bench: ${err.message}.`;
    e.hidden = false;
    document.body.dataset.state = 'error';
    return;
  }
  button.disabled = false;
  button.addEventListener('click', () => {
    button.disabled = true;
    // Straight to the admin link, as BenchTalks does: nothing is sent to the server here.
    location.assign(roomUrl(location.origin, newRoomId(), newKey(), newAdminToken()));
  });
  document.body.dataset.state = 'home';
  button.focus();
}

main();
