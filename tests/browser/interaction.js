// Appended to a copy of a report by render_report.sh: clicks and hovers the
// way a reader would and writes the outcome into body[data-selftest].
(function () {
  var problems = [];
  function check(ok, what) { if (!ok) problems.push(what); }
  try {
    var table = document.getElementById('front-table');
    var header = table.querySelectorAll('thead th')[2];  // the first objective
    function column() {
      return Array.prototype.map.call(table.querySelectorAll('tbody.member'), function (body) {
        return parseFloat(body.rows[0].cells[2].getAttribute('data-v'));
      });
    }
    header.click();
    var up = column();
    for (var i = 1; i < up.length; ++i) check(up[i - 1] <= up[i], 'ascending sort');
    header.click();
    var down = column();
    for (var j = 1; j < down.length; ++j) check(down[j - 1] >= down[j], 'descending sort');
    check(header.getAttribute('aria-sort') === 'descending', 'sort marker');

    var row = table.querySelector('tr.front-row');
    var detail = row.parentNode.querySelector('tr.detail');
    check(detail.hidden, 'details start closed');
    row.click();
    check(!detail.hidden, 'a click opens the row');
    check(detail.querySelector('svg.genome rect.op') !== null, 'the genome picture');
    check(detail.querySelector('.lineage') !== null, 'the lineage');
    row.click();
    check(detail.hidden, 'a second click closes it');

    var point = document.querySelector('svg.scatter [data-i]');
    point.dispatchEvent(new MouseEvent('mouseover', { bubbles: true, clientX: 100, clientY: 100 }));
    var tip = document.getElementById('tooltip');
    check(!tip.hidden, 'hover shows the tooltip');
    check(tip.textContent.indexOf('perplexity') >= 0, 'the tooltip lists the metrics');
    check(document.querySelectorAll('.hl').length >= 3, 'hover highlights the candidate in every plot');
    document.body.dispatchEvent(new MouseEvent('mouseover', { bubbles: true }));
    check(tip.hidden, 'leaving hides the tooltip');

    var every = document.querySelector('.view-switch button[data-view="all"]');
    check(every !== null, 'a search over rungs has the fidelity switch');
    if (every) {
      check(document.querySelector('.view-all figure').offsetWidth === 0, 'every-fidelity plots start hidden');
      every.click();
      check(document.querySelector('.view-all figure').offsetWidth > 0, 'the switch shows every fidelity');
      check(document.querySelector('.view-top figure').offsetWidth === 0, 'and hides the front-fidelity plots');
    }
    check(document.body.getAttribute('data-js-error') === null, 'no error');
  } catch (e) {
    problems.push('exception: ' + e.message);
  }
  document.body.setAttribute('data-selftest', problems.length ? 'failed: ' + problems.join('; ') : 'ok');
})();
