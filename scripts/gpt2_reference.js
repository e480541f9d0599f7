#!/usr/bin/env node
// Reference GPT-2 token ids for a UTF-8 text file, from the npm package gpt-3-encoder (a JavaScript
// port of OpenAI's encoder.py), one id per line. tests/test_tokenizer.c checks ./train's gpt2
// tokenizer against ids made by this script (tests/data/gpt2_reference.ids).
//
//   npm install --prefix /tmp/gpt3enc gpt-3-encoder
//   NODE_PATH=/tmp/gpt3enc/node_modules node scripts/gpt2_reference.js tests/data/gpt2_reference.txt \
//       > tests/data/gpt2_reference.ids
const fs = require('fs');
const { encode, decode } = require('gpt-3-encoder');

if (process.argv.length !== 3) {
  process.stderr.write('usage: node scripts/gpt2_reference.js FILE > FILE.ids\n');
  process.exit(2);
}
const text = fs.readFileSync(process.argv[2], 'utf-8');
const ids = encode(text);
if (decode(ids) !== text) {
  process.stderr.write(process.argv[2] + ': the reference encoder does not round-trip this text\n');
  process.exit(1);
}
process.stdout.write(ids.join('\n') + '\n');
