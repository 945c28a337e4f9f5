// wsclient.js: a minimal RFC 6455 client for tests (Node 20 has no
// WebSocket client without a flag): text frames out (masked, as clients
// must), text and close frames in. Enough to drive /agent/ws.
//
//   const ws = await connect({ port, path: '/agent/ws', protocol: 'civicgate-agent', origin })
//     → resolves once the server answered 101; rejects with err.status on refusal
//   ws.send(obj)            one text frame of JSON
//   await ws.next(pred, ms) the next received JSON frame matching pred
//   await ws.closed         { code } when the server closed
'use strict';

const crypto = require('node:crypto');
const http = require('node:http');

function connect({ port, path, protocol, origin, host = '127.0.0.1' }) {
  return new Promise((resolve, reject) => {
    const key = crypto.randomBytes(16).toString('base64');
    const headers = {
      Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': key,
    };
    if (protocol) headers['Sec-WebSocket-Protocol'] = protocol;
    if (origin) headers.Origin = origin;
    const req = http.request({ host, port, path, method: 'GET', headers });
    req.on('response', (res) => {
      const err = new Error(`upgrade refused: ${res.statusCode}`);
      err.status = res.statusCode;
      res.resume();
      reject(err);
    });
    req.on('error', reject);
    req.on('upgrade', (res, socket, head) => resolve(wrap(socket, head)));
    req.end();
  });
}

function wrap(socket, head) {
  let buf = head && head.length ? Buffer.from(head) : Buffer.alloc(0);
  const frames = [];
  const waiters = [];
  let closeResolve;
  const ws = {
    frames,
    closed: new Promise((r) => { closeResolve = r; }),
    send(obj) { socket.write(encode(Buffer.from(typeof obj === 'string' ? obj : JSON.stringify(obj)), 0x1)); },
    close() { try { socket.write(encode(Buffer.from([0x03, 0xe8]), 0x8)); } catch (e) { /* gone */ } socket.end(); },
    next(pred = () => true, timeout = 10000) {
      const i = frames.findIndex(pred);
      if (i >= 0) return Promise.resolve(frames.splice(i, 1)[0]);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no matching frame within ${timeout} ms; got ${JSON.stringify(frames).slice(0, 2000)}`));
        }, timeout);
        waiters.push(w);
      });
    },
  };
  function deliver(obj) {
    const i = waiters.findIndex((w) => w.pred(obj));
    if (i >= 0) {
      const w = waiters.splice(i, 1)[0];
      clearTimeout(w.timer);
      w.resolve(obj);
    } else {
      frames.push(obj);
    }
  }
  function parse() {
    for (;;) {
      if (buf.length < 2) return;
      const op = buf[0] & 0x0f;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      if (buf.length < off + len) return;
      const payload = buf.subarray(off, off + len);
      buf = buf.subarray(off + len);
      if (op === 0x1) {
        try { deliver(JSON.parse(payload.toString('utf8'))); } catch (e) { deliver({ unparsed: payload.toString() }); }
      } else if (op === 0x8) {
        closeResolve({ code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005 });
        socket.end();
      }
    }
  }
  socket.on('data', (d) => { buf = Buffer.concat([buf, d]); parse(); });
  socket.on('close', () => closeResolve({ code: 1006 }));
  socket.on('error', () => {});
  if (buf.length) setImmediate(parse);
  return ws;
}

function encode(payload, op) {
  const mask = crypto.randomBytes(4);
  let hdr;
  if (payload.length < 126) hdr = Buffer.from([0x80 | op, 0x80 | payload.length]);
  else if (payload.length < 65536) { hdr = Buffer.alloc(4); hdr[0] = 0x80 | op; hdr[1] = 0x80 | 126; hdr.writeUInt16BE(payload.length, 2); }
  else { hdr = Buffer.alloc(10); hdr[0] = 0x80 | op; hdr[1] = 0x80 | 127; hdr.writeBigUInt64BE(BigInt(payload.length), 2); }
  const masked = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) masked[i] = payload[i] ^ mask[i % 4];
  return Buffer.concat([hdr, mask, masked]);
}

module.exports = { connect };
