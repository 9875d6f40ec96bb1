// The chat page end to end in headless Chromium (playwright-core) against a real gateway.
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { chromium, type Browser, type Page } from 'playwright-core'
import { startGateway, until, type TestGateway } from '../helpers/gateway.js'
import { executable, lacks } from '../helpers/system.js'

const launch = () =>
  chromium.launch({
    executablePath: executable('chromium'),
    // Without the background-networking flags Chromium keeps dialling Google's hosts, which this network refuses.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync'
    ]
  })

/** The chat page, ready, with its errors (uncaught or logged) and the bodies it posts to /api/chat recorded. */
async function openChatPage(browser: Browser, gw: TestGateway, pageErrors: string[], chatBodies: any[]): Promise<Page> {
  const page = await browser.newPage()
  page.on('pageerror', (err) => pageErrors.push(String(err)))
  page.on('console', (msg) => {
    if (msg.type() === 'error') pageErrors.push(msg.text())
  })
  page.on('request', (request) => {
    if (request.method() === 'POST' && request.url().endsWith('/api/chat')) chatBodies.push(JSON.parse(request.postData() ?? '{}'))
  })
  await page.goto(gw.url + '/')
  await page.waitForSelector('#app[data-ready="true"]')
  return page
}

describe.skipIf(lacks('the chat page suite', 'chromium'))('chat page in Chromium', () => {
  let gw: TestGateway
  let browser: Browser
  let page: Page
  const pageErrors: string[] = []
  const chatBodies: any[] = []

  beforeAll(async () => {
    gw = await startGateway({ UPSTREAM_RETRIES: '0' })
    browser = await launch()
    page = await openChatPage(browser, gw, pageErrors, chatBodies)
  })
  afterAll(async () => {
    await browser?.close()
    await gw?.close()
  })

  async function sendMessage(text: string): Promise<void> {
    const input = page.getByLabel('Message')
    await input.click()
    await input.fill(text)
    await input.press('Enter')
  }

  test('serves the page with a CSP, the client and the vendored parser', async () => {
    const res = await fetch(gw.url + '/')
    expect(res.headers.get('content-type')).toMatch(/^text\/html/)
    expect(res.headers.get('content-security-policy')).toMatch(/script-src 'self' 'sha256-/)
    expect((await fetch(gw.url + '/client/index.js')).status).toBe(200)
    expect((await fetch(gw.url + '/vendor/eventsource-parser.js')).status).toBe(200)
    expect((await fetch(gw.url + '/client/..%2Fpackage.json')).status).toBe(404)
    expect(pageErrors).toEqual([])
  })

  test('send with Enter: the reply streams into the live region, then done', async () => {
    await sendMessage('Tell me about tides [[sim:tokens=40, delay=15]]')
    const live = page.locator('[aria-live="polite"]')
    await page.waitForSelector('#app[data-state="streaming"]')
    await live.locator('.turn.model .text').filter({ hasText: /\S/ }).first().waitFor()
    await page.waitForSelector('#app[data-state="done"]')
    expect(await live.locator('.turn.user').count()).toBe(1)
    expect(await live.locator('.turn.user').textContent()).toContain('Tell me about tides')
    expect((await live.locator('.turn.model .text').textContent())!.length).toBeGreaterThan(10)
    expect(await page.locator('#app').getAttribute('data-session-id')).toMatch(/^[A-Za-z0-9_-]{8,}$/)
    expect(pageErrors).toEqual([])
  })

  test('continue: the second turn uses the same session and both turns show', async () => {
    const sessionId = await page.locator('#app').getAttribute('data-session-id')
    await sendMessage('And why twice a day? [[sim:tokens=5]]')
    await page.waitForSelector('.turn.model:nth-of-type(4)[data-state="done"]')
    expect(await page.locator('.turn.user').count()).toBe(2)
    expect(await page.locator('.turn.model').count()).toBe(2)
    expect(chatBodies.at(-1)).toMatchObject({ message: 'And why twice a day? [[sim:tokens=5]]', sessionId })
    expect(chatBodies[0].sessionId).toBeUndefined()
    expect(await page.locator('#app').getAttribute('data-session-id')).toBe(sessionId)
  })

  test('Shift+Enter adds a newline instead of sending', async () => {
    const input = page.getByLabel('Message')
    const before = chatBodies.length
    await input.fill('line one')
    await input.press('Shift+Enter')
    await input.pressSequentially('line two')
    expect(await input.inputValue()).toBe('line one\nline two')
    expect(chatBodies.length).toBe(before)
    await input.fill('')
  })

  test('Stop aborts the reply and the gateway cancels the upstream call', async () => {
    const before = gw.sim.stats().aborted
    await sendMessage('A very long answer please [[sim:tokens=400, delay=30]]')
    await page.locator('.turn.model').last().locator('.text').filter({ hasText: /\S/ }).waitFor()
    const stop = page.getByRole('button', { name: 'Stop' })
    await stop.click()
    await page.waitForSelector('#app[data-state="stopped"]')
    await until(() => gw.sim.stats().aborted > before, 'the simulator to see the abort')
    await until(() => gw.sim.stats().active === 0, 'no active upstream call')
    expect(await page.locator('.turn.model').last().getAttribute('data-state')).toBe('stopped')
    expect(await stop.isDisabled()).toBe(true)
  })

  test('an upstream error shows a readable message', async () => {
    await sendMessage('break please [[sim:status=400]]')
    await page.waitForSelector('#app[data-state="error"]')
    const error = await page.locator('.turn.model').last().locator('.error').textContent()
    expect(error).toMatch(/\(upstream_error\)\./)
    expect(error).not.toMatch(/[{}]/)
    expect(await page.getByRole('status').textContent()).toBe(error)
  })

  test('an unavailable provider says so and that you can try again', async () => {
    await sendMessage('again [[sim:status=503]]')
    await page.waitForSelector('.turn.model:last-of-type[data-state="error"]')
    expect(await page.locator('.turn.model').last().locator('.error').textContent()).toBe(
      'The model provider is unavailable (upstream_unavailable). You can try again.'
    )
    expect(pageErrors).toEqual([])
  })
})

describe.skipIf(lacks('the API-key page suite', 'chromium'))('chat page against a gateway that needs an API key', () => {
  let gw: TestGateway
  let browser: Browser

  beforeAll(async () => {
    gw = await startGateway({ API_KEYS: 'page-key-123' })
    browser = await launch()
  })
  afterAll(async () => {
    await browser?.close()
    await gw?.close()
  })

  test('without a key the page says one is needed; with the key in the field the turn streams', async () => {
    const page = await browser.newPage()
    await page.goto(gw.url + '/')
    await page.waitForSelector('#app[data-ready="true"]')
    const input = page.getByLabel('Message')
    await input.fill('hello [[sim:tokens=5]]')
    await input.press('Enter')
    await page.waitForSelector('#app[data-state="error"]')
    expect(await page.locator('.turn.model').last().locator('.error').textContent()).toMatch(/API key.*\(unauthorized\)/)
    await page.getByText('API key', { exact: true }).click()
    await page.getByLabel(/^API key \(only when/).fill('page-key-123')
    await input.fill('hello again [[sim:tokens=5]]')
    await input.press('Enter')
    await page.waitForSelector('#app[data-state="done"]')
    await page.close()
  })
})

describe.skipIf(lacks('the thinking and tools page suite', 'chromium'))('thinking and tool calls on the page', () => {
  let gw: TestGateway
  let browser: Browser
  let page: Page
  const pageErrors: string[] = []
  const chatBodies: any[] = []

  beforeAll(async () => {
    gw = await startGateway({ UPSTREAM_RETRIES: '0' })
    browser = await launch()
    page = await openChatPage(browser, gw, pageErrors, chatBodies)
  })
  afterAll(async () => {
    await browser?.close()
    await gw?.close()
  })

  async function send(text: string): Promise<void> {
    const input = page.getByLabel('Message')
    await input.fill(text)
    await input.press('Enter')
    await page.waitForSelector('.turn.model:last-of-type[data-state="done"]')
  }

  test('thoughts go into a collapsed "Thinking" block, never into the answer', async () => {
    await page.getByLabel("Show the model's thinking").check()
    await send('why is the sea salty? [[sim:think=2, tokens=6]]')
    const turn = page.locator('.turn.model').last()
    const thinking = turn.locator('details.thinking')
    expect(await thinking.count()).toBe(1)
    expect(await thinking.getAttribute('open')).toBeNull()
    expect(await thinking.locator('summary').textContent()).toBe('Thinking')
    const thought = (await thinking.locator('.thought').textContent())!
    expect(thought).toMatch(/^\*\*Thinking it through\*\*/)
    const answer = (await turn.locator('.text').textContent())!
    expect(answer.split(' ')).toHaveLength(6)
    expect(answer).not.toContain('Thinking it through')
    expect(chatBodies.at(-1)).toMatchObject({ thinking: { include: true } })
    await page.getByLabel("Show the model's thinking").uncheck()
  })

  test('a tool call is shown as what was asked, the page answers it, and the reply follows in the same turn', async () => {
    await page.getByLabel(/ask this page for the time/).check()
    const before = chatBodies.length
    await send('what time is it? [[sim:tools=get_time, tokens=4]]')
    const turn = page.locator('.turn.model').last()
    expect(await turn.locator('.tool-call').textContent()).toBe('Asked for get_time({})')
    expect(await turn.locator('.tool-result').textContent()).toMatch(/^get_time answered \{"iso":"\d{4}-/)
    expect((await turn.locator('.text').textContent())!.split(' ')).toHaveLength(4)
    const [asked, answered] = chatBodies.slice(before)
    expect(asked.tools.map((t: { name: string }) => t.name)).toEqual(['get_time'])
    expect(answered.message).toBeUndefined()
    expect(answered.sessionId).toBe(await page.locator('#app').getAttribute('data-session-id'))
    expect(answered.toolResults).toEqual([
      { id: expect.stringMatching(/^gwc_/), name: 'get_time', result: expect.objectContaining({ zone: expect.any(String) }) }
    ])
    expect(chatBodies).toHaveLength(before + 2)
    expect(pageErrors).toEqual([])
  })
})
