// A re-creation of the original peerbox Node.js signalling server ("the seed"), written from its
// documented behaviour, for benchmarks only: express + ws over HTTPS with a self-signed
// certificate. Kept deliberately faithful to the seed's shape: rooms live in an array that is
// searched linearly, and every relayed message is JSON.stringify'd again per recipient.
//
//   node server.mjs --port 8443 --cert cert.pem --key key.pem
// (node-turn, which the seed also ran, is left out: only signalling is measured.)
// The seed logged every message through winston at info level (console transport, colorized,
// HH:mm timestamp, lines cut to 100 characters after formatting): that cost is part of the
// server as shipped, so it is on by default here too; `--no-log` measures the relay alone.

import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import express from 'express';
import { WebSocketServer } from 'ws';
import winston from 'winston';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const port = Number(arg('port', '8443'));
const logging = !process.argv.includes('--no-log');
const logger = winston.createLogger({
  level: 'info',
  format: winston.format.combine(
    winston.format.colorize(),
    winston.format.timestamp({ format: 'HH:mm' }),
    winston.format.printf(({ level, message, timestamp }) =>
      `[${timestamp}]${level}: ${message.length > 100 ? message.substring(0, 100) + '...' : message}`),
  ),
  transports: [new winston.transports.Console()],
});
const app = express();
app.get('/', (_req, res) => res.send('<!doctype html><title>seed</title>'));
const server = https.createServer(
  { cert: readFileSync(arg('cert', 'cert.pem')), key: readFileSync(arg('key', 'key.pem')) },
  app,
);
const wss = new WebSocketServer({ server });

const MAX_MEMBERS = 10;
// [{ id, members: [{ sessionId, username, ws }] }]
const rooms = [];

wss.on('connection', (ws) => {
  const sessionId = randomUUID();
  let username;
  let myRoom; // as the seed kept `ws.room`

  ws.on('message', (raw) => {
    if (logging) logger.info(`MESG : ${raw}`);
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch (e) {
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    msg.from = sessionId;
    switch (msg.type) {
      case 'login': {
        const { roomrequest } = msg.data || {};
        username = (msg.data || {}).username;
        let room = rooms.find((r) => r.id === roomrequest);
        if (room && room.members.length >= MAX_MEMBERS) {
          ws.send(JSON.stringify({
            type: 'error',
            message: { errorType: 'full', errorText: `This room is full (${MAX_MEMBERS} people).` },
          }));
          return;
        }
        if (!room) {
          room = { id: roomrequest, members: [] };
          rooms.push(room);
        }
        room.members.push({ sessionId, username, ws });
        myRoom = room;
        ws.send(JSON.stringify({ type: 'joined', data: sessionId }));
        room.members.forEach((m) => {
          if (m.sessionId !== sessionId) m.ws.send(JSON.stringify(msg));
        });
        break;
      }
      case 'offer':
      case 'answer':
      case 'candidate': {
        if (logging) logger.info('sendMessageToOne : ' + JSON.stringify(msg));
        const room = myRoom;
        if (!room) return;
        const target = room.members.find((m) => m.sessionId === msg.to);
        if (target) target.ws.send(JSON.stringify(msg));
        break;
      }
      case 'randomCheck': {
        const exists = rooms.some((r) => r.id === msg.data);
        ws.send(JSON.stringify({
          type: 'randomCheckResult',
          data: { result: exists ? 'fail' : 'ok', roomrequest: msg.data },
        }));
        break;
      }
      default:
        break;
    }
  });

  ws.on('close', () => {
    const room = myRoom;
    if (!room) return;
    room.members = room.members.filter((m) => m.sessionId !== sessionId);
    room.members.forEach((m) =>
      m.ws.send(JSON.stringify({ type: 'logout', data: { username, sessionId } })),
    );
    if (room.members.length === 0) rooms.splice(rooms.indexOf(room), 1);
  });
});

server.listen(port, '127.0.0.1', () => console.log(`seed re-creation listening on ${port}`));
