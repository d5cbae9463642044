// The report's only script, hand-written and small: hover a candidate (a
// point, a line or a table row) to see its summary and metrics and to
// highlight it in every plot; click a column to sort a table; click a front
// row (or its point) to open the genome. Errors are written into the page
// (#js-errors, body[data-js-error]) so a headless browser test can see them;
// body[data-report-ready] says the script ran to its end.
#include "report/page_style.hpp"

namespace livs::report {

const char* page_script() {
  return R"JS(
(function () {
  'use strict';
  var errors = document.getElementById('js-errors');
  function showError(message) {
    document.body.setAttribute('data-js-error', '1');
    errors.hidden = false;
    errors.textContent += 'JavaScript error: ' + message + '\n';
  }
  window.addEventListener('error', function (e) { showError(e.message || String(e)); });

  var data = JSON.parse(document.getElementById('candidate-data').textContent);
  var tip = document.getElementById('tooltip');

  function fmt(v) {
    if (v === null || v === undefined) return '-';
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(3);
    return String(Math.round(v * 1e4) / 1e4);
  }
  function add(parent, tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    parent.appendChild(e);
    return e;
  }
  function fill(i) {
    var c = data.candidates[i];
    tip.textContent = '';
    var head = c.h + (c.n ? '  ' + c.n : '') + (c.front ? '  (front)' : '') + (c.final ? '  finalist' : '');
    add(tip, 'div', 't-head', head);
    add(tip, 'div', 't-summary', c.s);
    var table = add(tip, 'table');
    var names = data.objectives.slice();
    Object.keys(c.m).forEach(function (k) { if (names.indexOf(k) < 0) names.push(k); });
    names.forEach(function (k) {
      var m = c.m[k];
      if (!m) return;
      var row = add(table, 'tr');
      add(row, 'td', data.objectives.indexOf(k) >= 0 ? 't-obj' : '', k);
      var unit = data.units[k] ? ' ' + data.units[k] : '';
      add(row, 'td', '', fmt(m[0]) + (m[2] > 1 ? ' \u00b1 ' + fmt(m[1]) : '') + unit);
    });
    var foot = 'generation ' + c.g + ', fidelity ' + c.f;
    if (c.v) foot += ', violates constraints by ' + fmt(c.v);
    add(tip, 'div', 'muted', foot);
  }
  var highlighted = [];
  function highlight(i) {
    highlighted.forEach(function (e) { e.classList.remove('hl'); });
    highlighted = i === null ? [] : Array.prototype.slice.call(document.querySelectorAll('[data-i="' + i + '"]'));
    highlighted.forEach(function (e) { e.classList.add('hl'); });
  }
  function candidateOf(target) {
    var e = target.closest ? target.closest('[data-i]') : null;
    return e ? e.getAttribute('data-i') : null;
  }
  document.addEventListener('mouseover', function (e) {
    var i = candidateOf(e.target);
    if (i === null) { tip.hidden = true; highlight(null); return; }
    fill(Number(i));
    tip.hidden = false;
    highlight(i);
  });
  document.addEventListener('mousemove', function (e) {
    if (tip.hidden) return;
    var x = e.clientX + 16, y = e.clientY + 16;
    if (x + tip.offsetWidth > window.innerWidth - 8) x = e.clientX - tip.offsetWidth - 16;
    if (y + tip.offsetHeight > window.innerHeight - 8) y = e.clientY - tip.offsetHeight - 16;
    tip.style.left = Math.max(4, x) + 'px';
    tip.style.top = Math.max(4, y) + 'px';
  });

  function toggle(body, open) {
    var detail = body.querySelector('tr.detail');
    if (!detail) return;
    detail.hidden = open === undefined ? !detail.hidden : !open;
  }
  document.addEventListener('click', function (e) {
    var button = e.target.closest('.view-switch button');
    if (button) {
      var section = button.closest('section');
      section.setAttribute('data-view', button.getAttribute('data-view'));
      Array.prototype.forEach.call(section.querySelectorAll('.view-switch button'), function (b) {
        b.setAttribute('aria-pressed', b === button ? 'true' : 'false');
      });
      return;
    }
    var row = e.target.closest('tr.front-row');
    if (row) { toggle(row.parentNode); return; }
    var point = e.target.closest('svg.plot [data-i], svg.scatter-all [data-i]');
    if (!point) return;
    var body = document.querySelector('tbody.member[data-i="' + point.getAttribute('data-i') + '"]');
    if (!body) return;
    toggle(body, true);
    body.scrollIntoView({ behavior: 'smooth', block: 'center' });
  });
  document.addEventListener('keydown', function (e) {
    if ((e.key === 'Enter' || e.key === ' ') && e.target.matches && e.target.matches('tr.front-row')) {
      e.preventDefault();
      toggle(e.target.parentNode);
    }
  });

  // Sorting: every table.sortable; each tbody is one item (a front member
  // keeps its detail row); cells carry their sort value in data-v.
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    var heads = table.querySelectorAll('thead th');
    Array.prototype.forEach.call(heads, function (th, column) {
      th.addEventListener('click', function () {
        var ascending = th.getAttribute('aria-sort') !== 'ascending';
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
        var numeric = th.getAttribute('data-type') === 'number';
        var bodies = Array.prototype.slice.call(table.tBodies);
        function key(body) {
          var cell = body.rows[0].cells[column];
          var v = cell ? cell.getAttribute('data-v') : '';
          return numeric ? parseFloat(v) : (v || '').toLowerCase();
        }
        bodies.sort(function (a, b) {
          var x = key(a), y = key(b);
          var order = x < y ? -1 : x > y ? 1 : 0;
          return ascending ? order : -order;
        });
        bodies.forEach(function (b) { table.appendChild(b); });
      });
    });
  });
  document.body.setAttribute('data-report-ready', '1');
})();
)JS";
}

}  // namespace livs::report
