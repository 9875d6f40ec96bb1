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

async function send(message) {
  addTurn('user', message)
  const reply = addTurn('model', '')
  reply.turn.dataset.state = 'streaming'
  controller = new AbortController()
  setState('streaming', 'The assistant is replying…')
  try {
    const key = document.getElementById('api-key').value.trim()
    const headers = key ? { authorization: `Bearer ${key}` } : {}
    for await (const event of chat({ message, headers, ...(sessionId ? { sessionId } : {}), signal: controller.signal })) {
      if (event.type === 'meta') {
        if (event.sessionId) sessionId = event.sessionId
        app.dataset.sessionId = sessionId ?? ''
        reply.turn.dataset.requestId = event.requestId
      } else if (event.type === 'chunk') {
        reply.body.textContent += event.text
        reply.turn.scrollIntoView({ block: 'end' })
      } else if (event.type === 'done') {
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
