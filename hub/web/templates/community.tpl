% rebase('base.tpl')
<h1>{{_('community.title')}}</h1>
<div class="grid">
<section class="card" aria-labelledby="score-title">
  <h2 id="score-title">{{_('community.score_title')}}</h2>
  % if view.score is None:
  <p class="missing">{{_('community.no_data')}}</p>
  % else:
  <p class="big-ish">{{f'{view.score:.0f}'}}% <span aria-hidden="true">{{'★' * max(1, min(5, int(view.score // 20) + 1))}}</span></p>
  <p>{{_('community.score_text', score=f'{view.score:.0f}', hydro=fmt.kwh(view.week_hydro_kwh), demand=fmt.kwh(view.week_community_kwh))}}</p>
  % end
</section>
<figure class="card wide chart">
  <figcaption id="comm-cap">{{_('community.caption_demand')}}</figcaption>
  % include('svgbars.tpl', chart_id='comm', bars=comm)
  <p id="hydro-cap">{{_('community.caption_hydro')}}</p>
  % include('svgbars.tpl', chart_id='hydro', bars=hydro)
  <details>
    <summary>{{_('chart.table')}}</summary>
    <table>
      <thead><tr><th scope="col">{{_('chart.time')}}</th><th scope="col">{{_('now.community')}}</th><th scope="col">{{_('now.hydro')}}</th></tr></thead>
      <tbody>
      % for t, c, h in view.day:
        <tr><td>{{fmt.hhmm(t, tz)}}</td><td>{{fmt.kw(c)}}</td><td>{{fmt.kw(h)}}</td></tr>
      % end
      </tbody>
    </table>
  </details>
</figure>
</div>
