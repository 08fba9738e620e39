/**
 * A strict parser of the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), written from the spec
 * rather than from the writer: HELP/TYPE before a family's samples, one block per family,
 * metric and label names of the spec's alphabets, label values with only \\ \" \n escapes,
 * Go-style float values, no duplicate series. Throws on the first violation, naming the line.
 */
import { spawnSync } from 'node:child_process';

export interface Series {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const METRIC = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';
const VALUE = /^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]?Inf|NaN)$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export function parseExposition(text: string): Series[] {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const out: Series[] = [];
  const typed = new Map<string, string>();
  const closed = new Set<string>();
  const seen = new Set<string>();
  let current: string | undefined;
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, i) => {
    const at = `line ${i + 1}: '${line.slice(0, 80)}'`;
    if (line.startsWith('#')) {
      const m = new RegExp(`^# (HELP|TYPE) (${METRIC})(?: (.*))?$`).exec(line);
      if (!m) throw new Error(`${at}: bad comment line`);
      const [, kw, name, rest] = m;
      if (current !== name) {
        if (current) closed.add(current);
        if (closed.has(name!)) throw new Error(`${at}: family ${name} appears twice`);
        current = name;
      }
      if (kw === 'TYPE') {
        if (!TYPES.has(rest ?? '')) throw new Error(`${at}: bad type`);
        if (typed.has(name!)) throw new Error(`${at}: second TYPE for ${name}`);
        typed.set(name!, rest!);
      } else if (!/^(?:[^\\]|\\[\\n])*$/.test(rest ?? '')) throw new Error(`${at}: bad escape in HELP`);
      return;
    }
    if (line.trim() === '') throw new Error(`${at}: empty line`);
    const m = new RegExp(`^(${METRIC})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`).exec(line);
    if (!m) throw new Error(`${at}: bad sample line`);
    const [, name, labelText, value] = m;
    if (name !== current) throw new Error(`${at}: sample of ${name} outside its family block (${current})`);
    if (!typed.has(name!)) throw new Error(`${at}: sample before its TYPE line`);
    if (!VALUE.test(value!)) throw new Error(`${at}: bad value`);
    const labels: Record<string, string> = {};
    if (labelText !== undefined && labelText !== '') {
      const re = new RegExp(`(${LABEL})="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"(,|$)`, 'y');
      let pos = 0;
      while (pos < labelText.length) {
        re.lastIndex = pos;
        const lm = re.exec(labelText);
        if (!lm) throw new Error(`${at}: bad label at ${pos}`);
        if (lm[1]! in labels) throw new Error(`${at}: label ${lm[1]} twice`);
        labels[lm[1]!] = lm[2]!.replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
        pos = re.lastIndex;
        if (lm[3] === '' && pos !== labelText.length) throw new Error(`${at}: junk after labels`);
      }
    }
    const v = value === '+Inf' || value === 'Inf' ? Infinity : value === '-Inf' ? -Infinity : Number(value);
    if (typed.get(name!) === 'counter' && !(v >= 0)) throw new Error(`${at}: counter below 0`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) throw new Error(`${at}: duplicate series`);
    seen.add(key);
    out.push({ name: name!, labels, value: v });
  });
  return out;
}

/** The value of one series; `labels` must match exactly the given keys (others ignored). Throws when absent. */
export function valueOf(series: Series[], name: string, labels: Record<string, string> = {}): number {
  const s = series.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  if (!s) throw new Error(`no series ${name}${JSON.stringify(labels)}`);
  return s.value;
}

export const hasPromtool = spawnSync('sh', ['-c', 'command -v promtool']).status === 0;

/** `promtool check metrics` on the text: its complaints (lint problems included), '' when clean. */
export function promtoolCheck(text: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, output: (r.stdout + r.stderr).trim() };
}
