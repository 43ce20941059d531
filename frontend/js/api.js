// Talking to the control plane (/api/v1 on this origin).
//
// Tokens: the access token lives in memory only (gone on reload, never readable by
// another tab); the refresh token is kept in sessionStorage so that a reload of this
// tab stays signed in. The trade-off: a script running in this origin could read the
// refresh token; the strict Content-Security-Policy (no inline or foreign scripts) and
// rendering every piece of user data as text are what keep such a script out.
// Closing the tab ends the session.

const BASE = '/api/v1';
const REFRESH_KEY = 'veil.refresh_token';

let accessToken = null;
let refreshing = null; // one refresh at a time: concurrent 401s wait for the same one
const endedListeners = new Set();

export class ApiError extends Error {
  constructor(status, code, message, requestId = null, details = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.requestId = requestId;
    this.details = details;
  }
}

// Messages for the few codes where the server's own words are not enough for a person.
const PLAIN_WORDS = {
  network: 'Veil could not be reached. Check your connection and try again.',
  invalid_credentials: 'Wrong email or password.',
  email_taken: 'An account with this email already exists. Log in instead, or use another email.',
  session_ended: 'Your session has ended. Please log in again.',
  developer_only: 'This needs a developer account.',
  admin_only: 'This needs an administrator account.',
};

/** A sentence a person can act on, for any error thrown by the calls below. */
export function plainWords(error) {
  if (!(error instanceof ApiError)) {
    return 'Something went wrong in the page. Reload it and try again.';
  }
  if (Object.hasOwn(PLAIN_WORDS, error.code)) return PLAIN_WORDS[error.code];
  if (error.code === 'validation_error' && error.details && Array.isArray(error.details.fields)) {
    const problems = error.details.fields.map((f) => `${humanField(f.field)}: ${f.problem}`);
    return `Please check the form. ${problems.join('; ')}.`;
  }
  let text = error.message || 'The request failed.';
  if (error.status >= 500) {
    text = `${text} This is a problem on Veil's side; try again in a moment.`;
    if (error.requestId) text += ` (Request id ${error.requestId}.)`;
  }
  return text;
}

function humanField(field) {
  const last = String(field || 'value').split('.').pop();
  return last.replace(/_/g, ' ');
}

export function hasSession() {
  return accessToken !== null || sessionStorage.getItem(REFRESH_KEY) !== null;
}

export function setTokens(tokens) {
  accessToken = tokens.access_token;
  sessionStorage.setItem(REFRESH_KEY, tokens.refresh_token);
}

export function refreshToken() {
  return sessionStorage.getItem(REFRESH_KEY);
}

export function clearTokens() {
  accessToken = null;
  sessionStorage.removeItem(REFRESH_KEY);
}

/** Called when the session cannot be renewed (the refresh token is gone or refused). */
export function onSessionEnded(listener) {
  endedListeners.add(listener);
}

/** Trade the refresh token for new tokens; false when there is none or it is refused. */
export function refreshTokens() {
  if (refreshing) return refreshing;
  const token = refreshToken();
  if (!token) return Promise.resolve(false);
  refreshing = (async () => {
    try {
      const tokens = await request('/auth/refresh', {
        method: 'POST',
        body: { refresh_token: token },
        auth: false,
      });
      setTokens(tokens);
      return true;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        clearTokens();
        return false;
      }
      throw error;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

async function toApiError(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const error = body && body.error ? body.error : {};
  return new ApiError(
    response.status,
    error.code || `http_${response.status}`,
    error.message || `The server answered ${response.status}.`,
    error.request_id || response.headers.get('x-request-id'),
    error.details || null,
  );
}

async function send(path, options) {
  const headers = { Accept: 'application/json', ...(options.headers || {}) };
  let body;
  if (options.form) {
    body = options.form;
  } else if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.body);
  }
  if (options.auth !== false && accessToken) headers.Authorization = `Bearer ${accessToken}`;
  try {
    return await fetch(BASE + path, {
      method: options.method || 'GET',
      headers,
      body,
      signal: options.signal,
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (error) {
    if (error && error.name === 'AbortError') throw error;
    throw new ApiError(0, 'network', PLAIN_WORDS.network);
  }
}

/** Send with the access token; on a 401, renew the tokens once and try again. */
async function authorised(path, options) {
  if (options.auth !== false && !accessToken && refreshToken()) await refreshTokens();
  let response = await send(path, options);
  if (response.status === 401 && options.auth !== false && refreshToken()) {
    if (await refreshTokens()) {
      response = await send(path, options);
    } else {
      for (const listener of endedListeners) listener();
      throw new ApiError(401, 'session_ended', PLAIN_WORDS.session_ended);
    }
  }
  return response;
}

/** JSON in, JSON out. `body` is sent as JSON, `form` as multipart. */
export async function request(path, options = {}) {
  const response = await authorised(path, options);
  if (!response.ok) throw await toApiError(response);
  if (response.status === 204) return null;
  const type = response.headers.get('content-type') || '';
  return type.includes('json') ? response.json() : response.text();
}

export const api = {
  get: (path, options = {}) => request(path, { ...options, method: 'GET' }),
  post: (path, body, options = {}) => request(path, { ...options, method: 'POST', body }),
  put: (path, body, options = {}) => request(path, { ...options, method: 'PUT', body }),
  patch: (path, body, options = {}) => request(path, { ...options, method: 'PATCH', body }),
  delete: (path, options = {}) => request(path, { ...options, method: 'DELETE' }),
};

/** `?a=1&b=2` from an object, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/**
 * Upload a file as multipart field `file`, reporting progress (0..1).
 * XMLHttpRequest, because fetch cannot report upload progress.
 */
export function upload(path, file, onProgress, signal) {
  const attempt = () =>
    new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', BASE + path);
      xhr.setRequestHeader('Accept', 'application/json');
      if (accessToken) xhr.setRequestHeader('Authorization', `Bearer ${accessToken}`);
      xhr.upload.addEventListener('progress', (event) => {
        if (event.lengthComputable && onProgress) onProgress(event.loaded / event.total);
      });
      xhr.addEventListener('load', () => resolve(xhr));
      xhr.addEventListener('error', () => reject(new ApiError(0, 'network', PLAIN_WORDS.network)));
      xhr.addEventListener('abort', () => reject(new DOMException('Aborted', 'AbortError')));
      if (signal) signal.addEventListener('abort', () => xhr.abort());
      const form = new FormData();
      form.append('file', file, file.name);
      xhr.send(form);
    });
  return (async () => {
    if (!accessToken && refreshToken()) await refreshTokens();
    let xhr = await attempt();
    if (xhr.status === 401 && (await refreshTokens())) xhr = await attempt();
    let body = null;
    try {
      body = JSON.parse(xhr.responseText);
    } catch {
      body = null;
    }
    if (xhr.status >= 200 && xhr.status < 300) return body;
    const error = body && body.error ? body.error : {};
    throw new ApiError(
      xhr.status,
      error.code || `http_${xhr.status}`,
      error.message || (xhr.status === 413 ? 'The file is too large.' : `The server answered ${xhr.status}.`),
      error.request_id || null,
      error.details || null,
    );
  })();
}

/**
 * Follow a server-sent event stream with the bearer token (EventSource cannot send
 * one). Calls onEvent(name, data) per event; resolves when the server ends the stream.
 */
export async function stream(path, onEvent, signal) {
  const response = await authorised(path, { signal, headers: { Accept: 'text/event-stream' } });
  if (!response.ok) throw await toApiError(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) !== -1) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = 'message';
      const data = [];
      for (const line of frame.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (!data.length) continue; // a keep-alive comment
      let parsed;
      try {
        parsed = JSON.parse(data.join('\n'));
      } catch {
        parsed = { line: data.join('\n') };
      }
      onEvent(name, parsed);
    }
  }
}
