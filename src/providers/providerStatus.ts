/** A status-bar item: the onnxruntime execution provider in use (CPU/CUDA) and why. */
import * as vscode from 'vscode';
import type { EngineClient } from '../engine/client';

export class ProviderStatus implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('mechanist.provider', vscode.StatusBarAlignment.Right, 100);

  private constructor(private readonly engine: EngineClient) {
    this.item.name = 'Mechanist execution provider';
    this.item.command = { command: 'workbench.action.openSettings', title: 'Settings', arguments: ['mechanist.executionProvider'] };
  }

  static register(engine: EngineClient): ProviderStatus {
    return new ProviderStatus(engine);
  }

  /** Asks the engine what it uses now; shown once the engine has started. */
  async refresh(): Promise<void> {
    if (!this.engine.started) return;
    const p = await this.engine.request('provider', {}).catch(() => undefined);
    if (!p) return;
    this.item.text = `$(chip) ${p.provider === 'pending' ? 'ORT' : `ORT ${p.provider.toUpperCase()}`}`;
    this.item.tooltip = `Mechanist: onnxruntime ${p.provider === 'pending' ? 'provider not chosen yet' : `runs on ${p.provider.toUpperCase()}`}: ${p.reason}. Click to change mechanist.executionProvider.`;
    this.item.show();
  }

  dispose(): void {
    this.item.dispose();
  }
}
