// Writes the Parquet and Arrow fixtures of the data reader tests into the directory given (default: the test
// resources' data/ folder). Parquet comes from DuckDB (as Hugging Face's Hub converter and many pipelines write
// it), Arrow IPC from apache-arrow (the JavaScript port of the library `datasets` writes with). Run:
//   npm ci && node gen.mjs ../../resources/data-formats
import { DuckDBInstance } from '@duckdb/node-api';
import { tableFromArrays, tableToIPC, vectorFromArray, makeTable, Table, Utf8, List, Field, Struct, Int64 } from 'apache-arrow';
import fs from 'node:fs';
import path from 'node:path';

const out = path.resolve(process.argv[2] ?? '../../resources/data-formats');
fs.mkdirSync(out, { recursive: true });

// Three conversations: one multi-turn with a system message, two single-turn.
const chats = [
  [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Capital of France?' },
   { role: 'assistant', content: 'Paris.' }, { role: 'user', content: 'And of Italy?' },
   { role: 'assistant', content: 'Rome.' }],
  [{ role: 'user', content: 'Two plus two?' }, { role: 'assistant', content: 'Four.' }],
  [{ role: 'user', content: 'Colour of the sky?' }, { role: 'assistant', content: 'Blue, by day.' }],
];

function sqlString(s) { return "'" + s.replaceAll("'", "''") + "'"; }
function sqlChat(c) {
  return '[' + c.map(m => `{'role': ${sqlString(m.role)}, 'content': ${sqlString(m.content)}}`).join(', ') + ']';
}

const db = await DuckDBInstance.create(':memory:');
const con = await db.connect();
const values = chats.map((c, i) => `(${i}, ${sqlChat(c)})`).join(', ');
await con.run(`CREATE TABLE chat AS SELECT * FROM (VALUES ${values}) t(id, messages)`);
for (const codec of ['snappy', 'zstd', 'gzip']) {
  await con.run(`COPY chat TO '${path.join(out, `chat.${codec}.parquet`)}' (FORMAT parquet, COMPRESSION ${codec})`);
}
// alpaca columns; the second row has an empty input
await con.run(`COPY (SELECT * FROM (VALUES ('Translate to French.', 'cat', 'chat'), ('Name a prime.', '', 'Seven.'))
               t(instruction, input, output)) TO '${path.join(out, 'alpaca.parquet')}' (FORMAT parquet)`);
// a messages column of the wrong type (integers)
await con.run(`COPY (SELECT * FROM (VALUES (1, 7), (2, 8)) t(id, messages)) TO '${path.join(out, 'wrong-type.parquet')}' (FORMAT parquet)`);

// Arrow: the same chats as list<struct<role: utf8, content: utf8>>, plus an int64 id
const msgType = new List(new Field('item', new Struct([new Field('role', new Utf8(), true), new Field('content', new Utf8(), true)]), true));
const table = makeTable({ id: vectorFromArray(chats.map((_, i) => BigInt(i)), new Int64()) });
const withMessages = new Table({ id: table.getChild('id'), messages: vectorFromArray(chats, msgType) });
fs.writeFileSync(path.join(out, 'chat.arrow'), tableToIPC(withMessages, 'file'));

// datasets.save_to_disk layout: Arrow IPC *streams* named data-NNNNN-of-NNNNN.arrow, with state.json naming them
const dir = path.join(out, 'chat-save-to-disk');
fs.mkdirSync(dir, { recursive: true });
const halves = [withMessages.slice(0, 2), withMessages.slice(2)];
halves.forEach((t, i) => fs.writeFileSync(path.join(dir, `data-0000${i}-of-00002.arrow`), tableToIPC(t, 'stream')));
fs.writeFileSync(path.join(dir, 'state.json'), JSON.stringify({
  _data_files: halves.map((_, i) => ({ filename: `data-0000${i}-of-00002.arrow` })),
  _fingerprint: 'fixture', _format_type: null, _split: 'train',
}, null, 2));
fs.writeFileSync(path.join(dir, 'dataset_info.json'), JSON.stringify({
  features: { id: { dtype: 'int64', _type: 'Value' },
              messages: [{ role: { dtype: 'string', _type: 'Value' }, content: { dtype: 'string', _type: 'Value' } }] },
}, null, 2));
console.log('wrote fixtures to ' + out);
