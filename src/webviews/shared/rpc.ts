/**
 * The one request/response carrier every webview uses: the webview sends
 * `{type: 'request', id, request}`, the host answers `{type: 'response', id, result | error}`;
 * the host may also push `{type: 'update', ...}`. Each panel's protocol.ts names its requests.
 */

export interface RequestEnvelope<R> {
  type: 'request';
  id: number;
  request: R;
}

export interface ResponseEnvelope {
  type: 'response';
  id: number;
  result?: unknown;
  error?: string;
}
