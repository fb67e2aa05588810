import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { expectedText, tokenBudget, tokenText } from './tokens.js';

describe('generated tokens', () => {
  it('are a numbered sequence whose concatenation is the whole text', () => {
    assert.equal(tokenText(0), 'tok0 ');
    assert.equal(expectedText(3), 'tok0 tok1 tok2 ');
    assert.equal(expectedText(0), '');
  });

  it('follow the request limit when it is a positive integer, else the default', () => {
    assert.equal(tokenBudget(5, 8), 5);
    for (const odd of [undefined, null, 0, -1, 2.5, '5']) assert.equal(tokenBudget(odd, 8), 8, String(odd));
  });
});
