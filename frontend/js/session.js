// Who is signed in. Tokens are kept by api.js; this module knows the user.

import { api, clearTokens, hasSession, onSessionEnded, refreshToken, refreshTokens, setTokens } from './api.js';

let user = null;
const listeners = new Set();

function changed() {
  for (const listener of listeners) listener(user);
}

export function currentUser() {
  return user;
}

export function onUserChange(listener) {
  listeners.add(listener);
}

export function isDeveloper() {
  return user !== null && (user.role === 'developer' || user.role === 'admin');
}

export function isAdmin() {
  return user !== null && user.role === 'admin';
}

async function begin(tokens) {
  setTokens(tokens);
  user = await api.get('/auth/me');
  changed();
  return user;
}

export async function signup(email, password, role) {
  const tokens = await api.post('/auth/signup', { email, password, role }, { auth: false });
  return begin(tokens);
}

export async function login(email, password) {
  const tokens = await api.post('/auth/login', { email, password }, { auth: false });
  return begin(tokens);
}

/** On page load: a refresh token from this tab's earlier visit signs back in. */
export async function restore() {
  if (!hasSession()) return null;
  try {
    if (!(await refreshTokens())) return null;
    user = await api.get('/auth/me');
  } catch {
    clearTokens();
    user = null;
  }
  changed();
  return user;
}

export async function logout() {
  const token = refreshToken();
  if (token) {
    try {
      // Ends the refresh token's whole family on the server; the access token expires.
      await api.post('/auth/logout', { refresh_token: token }, { auth: false });
    } catch {
      // signed out here either way
    }
  }
  clearTokens();
  user = null;
  changed();
}

onSessionEnded(() => {
  user = null;
  changed();
});
