// Per-room persistent state in IndexedDB, laid out like Secure Chat's so the
// model is the same: database "secure_chat_keys", object store "room_keys",
// records keyed (out-of-line) by roomId.
//
// Record: {
//   roomId, key: CryptoKey (AES-GCM, non-extractable), clientId, updatedAt,
//   inviteKey?:      base64url room key, kept only to rebuild the invite link (see app.js),
//   password?:       room password once the server accepted it (auth_ok),
//   pendingPassword?: password chosen on /new_chat, until the server confirms creation
// }
// IndexedDB stores CryptoKey objects by structured clone, so the key never has
// to be exported to be remembered.

const DB_NAME = 'secure_chat_keys';
const STORE = 'room_keys';
const DB_VERSION = 1;

let dbPromise = null;

function openDb() {
  dbPromise ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      if (!req.result.objectStoreNames.contains(STORE)) req.result.createObjectStore(STORE);
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error('IndexedDB upgrade blocked by another tab'));
  });
  return dbPromise;
}

async function run(mode, fn) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const req = fn(tx.objectStore(STORE));
    // Resolve on commit, not on request success, so callers may navigate away
    // (location.replace) right after a put without losing the write.
    tx.oncomplete = () => resolve(req.result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });
}

export const getRoom = (roomId) => run('readonly', (s) => s.get(roomId));

export const putRoom = (roomId, record) =>
  run('readwrite', (s) => s.put({ ...record, roomId, updatedAt: Date.now() }, roomId));

export const deleteRoom = (roomId) => run('readwrite', (s) => s.delete(roomId));
