// Event ids as the resume log reads them back from the frames the worker writes, in both dialects,
// whatever the text inside the events says.
import { describe, expect, test } from 'vitest'
import { eventsAfter, lastIdOf } from '../../src/wire/ids.js'
import { gatewayFramer } from '../../src/wire/gateway-events.js'
import { openAiFramer } from '../../src/wire/openai-events.js'

const framers = {
  gateway: gatewayFramer,
  openai: openAiFramer({ id: 'chatcmpl-1', created: 1, model: 'gemini-2.5-flash' })
}

describe.each(Object.entries(framers))('%s frames', (_name, framer) => {
  const tricky = ['plain', 'my id: 99', 'id: 7\n\nid: 8', '"quoted" \\ back', '\n\nid: 5']
  const batch = [
    framer.chunk(1, tricky[0]!),
    framer.thought(2, tricky[1]!),
    framer.toolCall(3, { id: 'id: 42', name: 'f', args: { note: tricky[2] } }, 0),
    framer.chunk(4, tricky[3]!),
    framer.chunk(5, tricky[4]!)
  ]

  test("the last id of a batch is its last event's, not a number in its text", () => {
    for (let n = 1; n <= batch.length; n++) expect(lastIdOf(batch.slice(0, n).join(''))).toBe(n)
    expect(lastIdOf(framer.chunk(12, 'id: 3'))).toBe(12)
  })

  test('eventsAfter keeps exactly the events past an id', () => {
    const all = batch.join('')
    expect(eventsAfter(all, 0)).toBe(all)
    for (let after = 1; after <= batch.length; after++) expect(eventsAfter(all, after)).toBe(batch.slice(after).join(''))
  })
})
