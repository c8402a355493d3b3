% rebase('base.tpl')
<h1>{{_('best.title')}}</h1>
<div class="grid">
% include('goodtime_card.tpl')
<section class="card" aria-labelledby="best-list">
  <h2 id="best-list">{{_('best.list')}}</h2>
  % if view.windows:
  <ol class="best">
    % for w in view.windows:
    <li><strong>{{fmt.hhmm(w.start, tz)}}–{{fmt.hhmm(w.end, tz)}}</strong> · {{_('best.score', score=f'{w.score:.0f}')}}</li>
    % end
  </ol>
  % else:
  <p class="missing">{{_('best.none')}}</p>
  % end
  <p class="hint">{{_('best.explain')}}</p>
  <p class="hint">{{_('best.source_' + ('profile' if view.source.startswith('demand') else 'tariff'))}}</p>
</section>
<figure class="card wide chart">
  <figcaption id="best-cap">{{_('best.caption')}}
  % if view.windows:
  {{_('best.summary', start=fmt.hhmm(view.windows[0].start, tz), end=fmt.hhmm(view.windows[0].end, tz))}}
  % end
  </figcaption>
  % include('svgbars.tpl', chart_id='best')
  <p class="legend"><span class="key bar-green">✓</span> {{_('card.green_short')}} <span class="key bar-amber">–</span> {{_('card.amber_short')}} <span class="key bar-red">✕</span> {{_('card.red_short')}} <span class="key bar-best-key">▨</span> {{_('best.best_key')}}</p>
  <details>
    <summary>{{_('chart.table')}}</summary>
    <table>
      <thead><tr><th scope="col">{{_('chart.time')}}</th><th scope="col">{{_('best.score_col')}}</th><th scope="col">{{_('now.band')}}</th></tr></thead>
      <tbody>
      % for s, band in zip(view.slots, view.bands):
        <tr><td>{{fmt.hhmm(s.start, tz)}}</td><td>{{'–' if s.score is None else f'{s.score:.0f}'}} {{s.light and _('card.' + s.light + '_short')}}</td><td>{{band or '–'}}</td></tr>
      % end
      </tbody>
    </table>
  </details>
</figure>
</div>
