// Preact with htm: components as tagged templates, no build step.
import { h, render, Fragment } from "../vendor/preact.js";
import htm from "../vendor/htm.js";

export { h, render, Fragment };
export {
  useState, useEffect, useRef, useMemo, useCallback, useReducer,
} from "../vendor/preact-hooks.js";
export const html = htm.bind(h);
