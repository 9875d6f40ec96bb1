// The chat page: sends turns with the typed client (/client/index.js), streams the reply into the
// live region, keeps the sessionId from `meta` to continue the conversation, and stops on demand.
import { chat } from '/client/index.js'

const FRIENDLY = {
  bad_request: 'The request was not accepted',
  unauthorized: 'This gateway needs a valid API key (open "API key" below the message)',
  payload_too_large: 'The message is too long',
  rate_limited: 'Too many requests right now',
  overloaded: 'The service is busy',
  session_busy: 'The previous turn of this conversation is still running',
  session_not_found: 'This conversation has expired; a new one will start',
  shutting_down: 'The service is restarting',
  stream_not_found: 'The connection was lost and the reply could not be recovered',
  stream_lost: 'The reply was interrupted',
  client_disconnected: 'The reply was interrupted',
  upstream_rate_limited: 'The model provider is rate limiting requests',
  upstream_unavailable: 'The model provider is unavailable',
  upstream_error: 'The model provider returned an error',
  upstream_timeout: 'The model provider took too long to answer',
  safety_blocked: 'The reply was blocked by safety filters',
  worker_crashed: 'The reply failed unexpectedly',
  worker_stalled: 'The reply failed unexpectedly',
  worker_out_of_memory: 'The reply failed unexpectedly',
  client_too_slow: 'The connection was too slow',
  stream_timeout: 'The reply took too long',
  network_error: 'The gateway could not be reached',
  internal_error: 'Something went wrong on the server'
}

/** A readable sentence for an error event, e.g. "The model provider is unavailable (upstream_unavailable). You can try again." */
export function describeError(event) {
  const text = FRIENDLY[event.code] ?? (event.message || 'Something went wrong')
  let sentence = `${text} (${event.code}).`
  if (event.retryable) {
    const wait = event.retryAfterMs ? ` in ${Math.ceil(event.retryAfterMs / 1000)} s` : ''
    sentence += ` You can try again${wait}.`
  }
  return sentence
}

const app = document.getElementById('app')
const log = document.getElementById('log')
const form = document.getElementById('composer')
const input = document.getElementById('message')
const sendButton = document.getElementById('send')
const stopButton = document.getElementById('stop')
const newButton = document.getElementById('new-chat')
const status = document.getElementById('status')

let sessionId = null
let controller = null

function setState(state, message = '') {
  app.dataset.state = state
  status.textContent = message
  const busy = state === 'streaming'
  log.setAttribute('aria-busy', String(busy))
  sendButton.disabled = busy
  stopButton.disabled = !busy
}

function addTurn(role, text) {
  document.getElementById('empty')?.remove()
  const turn = document.createElement('article')
  turn.className = `turn ${role}`
  const who = document.createElement('span')
  who.className = 'who'
  who.textContent = role === 'user' ? 'You' : 'Assistant'
  const body = document.createElement('span')
  body.className = 'text'
  body.textContent = text
  turn.append(who, body)
  log.append(turn)
  turn.scrollIntoView({ block: 'end' })
  return { turn, body }
}

function note(turn, className, text) {
  const el = document.createElement('span')
  el.className = className
  el.textContent = text
  turn.append(el)
}

/** Tools this page declares when asked, and answers itself, in the browser. */
const PAGE_TOOLS = {
  get_time: {
    declaration: {
      name: 'get_time',
      description: 'The current date and time where the user is',
      parameters: { type: 'object', properties: {} }
    },
    run: () => ({
      iso: new Date().toISOString(),
      local: new Date().toLocaleString(),
      zone: Intl.DateTimeFormat().resolvedOptions().timeZone
    })
  }
}

/** A collapsed "Thinking" block at the top of a model turn, made on the first thought. */
function thinkingOf(reply) {
  if (!reply.thinking) {
    const details = document.createElement('details')
    details.className = 'thinking'
    const summary = document.createElement('summary')
    summary.textContent = 'Thinking'
    const text = document.createElement('span')
    text.className = 'thought'
    details.append(summary, text)
    reply.body.before(details)
    reply.thinking = text
  }
  return reply.thinking
}

/** A line above the answer's text: a tool call as what was asked, or the result the page gave. */
function annotate(reply, className, text) {
  const el = document.createElement('span')
  el.className = className
  el.textContent = text
  reply.body.before(el)
}

/**
 * Streams one request into the model turn `reply`. Returns the calls to answer when the reply
 * ended with calls to this page's tools, or undefined when the turn is over.
 */
async function stream(reply, request) {
  const key = document.getElementById('api-key').value.trim()
  const headers = key ? { authorization: `Bearer ${key}` } : {}
  const calls = []
  for await (const event of chat({ ...request, headers, ...(sessionId ? { sessionId } : {}), signal: controller.signal })) {
    if (event.type === 'meta') {
      if (event.sessionId) sessionId = event.sessionId
      app.dataset.sessionId = sessionId ?? ''
      reply.turn.dataset.requestId = event.requestId
    } else if (event.type === 'chunk') {
      reply.body.textContent += event.text
      reply.turn.scrollIntoView({ block: 'end' })
    } else if (event.type === 'thought') {
      thinkingOf(reply).textContent += event.text
    } else if (event.type === 'tool_call') {
      annotate(reply, 'tool-call', `Asked for ${event.name}(${JSON.stringify(event.args)})`)
      calls.push(event)
    } else if (event.type === 'done') {
      const runnable = calls.length > 0 && calls.every((c) => PAGE_TOOLS[c.name])
      if (runnable) return calls
      if (calls.length > 0) note(reply.turn, 'note', 'The assistant asked for a tool this page cannot run.')
      reply.turn.dataset.state = 'done'
      setState('done', 'Reply complete.')
    } else if (event.type === 'error') {
      if (event.code === 'session_not_found') {
        sessionId = null
        delete app.dataset.sessionId
      }
      reply.turn.dataset.state = 'error'
      const text = describeError(event)
      note(reply.turn, 'error', text)
      setState('error', text)
    }
  }
  return undefined
}

async function send(message) {
  addTurn('user', message)
  const reply = addTurn('model', '')
  reply.turn.dataset.state = 'streaming'
  controller = new AbortController()
  setState('streaming', 'The assistant is replying…')
  const tools = document.getElementById('use-tools').checked ? Object.values(PAGE_TOOLS).map((t) => t.declaration) : undefined
  const thinking = document.getElementById('show-thinking').checked ? { include: true } : undefined
  const options = { ...(tools ? { tools } : {}), ...(thinking ? { thinking } : {}) }
  try {
    let calls = await stream(reply, { message, ...options })
    // The page runs its own tools and answers, in the same conversation, until the model replies.
    while (calls) {
      const toolResults = calls.map((c) => ({ id: c.id, name: c.name, result: PAGE_TOOLS[c.name].run(c.args) }))
      for (const r of toolResults) annotate(reply, 'tool-result', `${r.name} answered ${JSON.stringify(r.result)}`)
      calls = await stream(reply, { toolResults, ...options })
    }
  } catch {
    if (controller.signal.aborted) {
      reply.turn.dataset.state = 'stopped'
      note(reply.turn, 'note', 'Stopped.')
      setState('stopped', 'Stopped.')
    } else {
      const text = describeError({ code: 'network_error', retryable: true })
      reply.turn.dataset.state = 'error'
      note(reply.turn, 'error', text)
      setState('error', text)
    }
  } finally {
    controller = null
  }
}

form.addEventListener('submit', (e) => {
  e.preventDefault()
  const message = input.value.trim()
  if (!message || controller) return
  input.value = ''
  send(message).finally(() => input.focus())
})

input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault()
    form.requestSubmit()
  }
})

stopButton.addEventListener('click', () => controller?.abort())

newButton.addEventListener('click', () => {
  controller?.abort()
  sessionId = null
  delete app.dataset.sessionId
  log.replaceChildren()
  setState('idle', 'New conversation.')
  input.focus()
})

app.dataset.ready = 'true'
