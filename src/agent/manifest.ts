// A cluster taken from a manifest file or directory (the cluster-file format of svcflow compile),
// re-read when it changes: fs.watch for promptness, a periodic poll because watches miss
// renames and network file systems. A file that does not parse keeps the last good state.

import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';

import { CONFIG_KIND, parseObjects } from '../cluster/load.js';
import { realClock, type Clock, type TimerHandle } from './clock.js';
import { KINDS, type ClusterSource, type RawObject, type SourceEvent } from './source.js';

export interface ManifestSourceOptions {
  clock?: Clock;
  pollMs?: number;
  /** fs.watch as well as polling (default true) */
  watch?: boolean;
  log?: Pick<Logger, 'info' | 'warn'>;
}

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

export class ManifestSource implements ClusterSource {
  readonly name: string;
  private onChange?: (ev: SourceEvent) => void;
  private watcher?: FSWatcher;
  private poll?: TimerHandle;
  private lastText?: string;
  private reading?: Promise<void>;
  private again = false;
  private readonly clock: Clock;
  /** reads that failed (kept the last good state) */
  failures = 0;

  constructor(
    private readonly path: string,
    private readonly opts: ManifestSourceOptions = {},
  ) {
    this.name = `manifest:${path}`;
    this.clock = opts.clock ?? realClock;
  }

  async start(onChange: (ev: SourceEvent) => void): Promise<void> {
    this.onChange = onChange;
    await this.reload();
    this.watch();
    this.schedulePoll();
  }

  /**
   * Watch the path. A file replaced by rename (how editors and careful writers update it) leaves
   * the watch on the old inode, so a rename re-arms it on whatever the path names now.
   */
  private watch(): void {
    if (!(this.opts.watch ?? true) || !this.onChange) return;
    this.watcher?.close();
    this.watcher = undefined;
    try {
      const w = watch(this.path, { persistent: false }, (event) => {
        void this.reload();
        if (event === 'rename') this.watch();
      });
      w.on('error', () => {
        w.close();
        if (this.watcher === w) this.watcher = undefined;
      });
      this.watcher = w;
    } catch {
      // the path is missing for a moment: polling reads it and re-arms the watch
    }
  }

  async stop(): Promise<void> {
    this.onChange = undefined;
    this.watcher?.close();
    this.watcher = undefined;
    this.poll?.cancel();
    await this.reading;
  }

  /** Read now (coalesced with a read in progress). */
  reload(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = (async () => {
      do {
        this.again = false;
        await this.readOnce();
      } while (this.again);
    })().finally(() => (this.reading = undefined));
    return this.reading;
  }

  private schedulePoll(): void {
    if (!this.onChange) return;
    this.poll = this.clock.setTimer(this.opts.pollMs ?? 5000, () => {
      if (!this.watcher) this.watch();
      void this.reload().finally(() => this.schedulePoll());
    });
  }

  private async readOnce(): Promise<void> {
    let objects: RawObject[];
    let text: string;
    try {
      const files = await this.files();
      const parts: string[] = [];
      objects = [];
      for (const f of files) {
        const t = await readFile(f, 'utf8');
        parts.push(`${f}\n${t}`);
        objects.push(...parseObjects(t, f));
      }
      text = parts.join('\n---\n');
    } catch (err) {
      this.failures++;
      this.opts.log?.warn(
        { path: this.path, err: err instanceof Error ? err.message : String(err) },
        'manifest unreadable; keeping the last good state',
      );
      return;
    }
    if (text === this.lastText) return;
    this.lastText = text;
    this.opts.log?.info({ path: this.path, objects: objects.length }, 'manifest loaded');
    this.onChange?.({
      type: 'snapshot',
      kinds: KINDS,
      objects: objects.filter((o) => o.kind !== CONFIG_KIND),
    });
  }

  private async files(): Promise<string[]> {
    const st = await stat(this.path);
    if (!st.isDirectory()) return [this.path];
    const names = (await readdir(this.path))
      .filter((n) => MANIFEST_FILE.test(n) && !n.startsWith('.'))
      .sort();
    return names.map((n) => join(this.path, n));
  }
}
