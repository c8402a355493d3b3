% rebase('base.tpl', charts=True)
<h1 class="visually-hidden">{{_('now.title')}}</h1>
<div class="grid">
<section class="card live {{'stale' if view.stale else ''}}" id="live" data-time="{{view.power.time or ''}}" aria-labelledby="live-title">
  <h2 id="live-title">{{_('now.power')}}</h2>
  % if not view.has_power_feed:
  <p class="missing">{{_('now.no_feed')}}</p>
  % end
  <p class="big"><span id="live-power">{{fmt.power(view.power.value)}}</span></p>
  <p class="muted" id="live-age">
  % if view.power.time:
    {{_('now.updated_at', time=fmt.hhmm(view.power.time, tz))}}
  % else:
    {{_('now.no_reading')}}
  % end
  </p>
  <p class="stale-note" id="live-stale" {{!'' if view.stale else 'hidden'}}>⚠ {{_('now.stale')}}</p>
</section>
% include('goodtime_card.tpl', card=view.card)
<section class="card" aria-labelledby="band-title">
  <h2 id="band-title">{{_('now.band')}}</h2>
  % if view.band:
  <p class="big-ish" id="band">{{view.band.name}} · {{fmt.pence(view.band.price)}}/kWh</p>
  % else:
  <p class="missing" id="band">{{_('tariff.missing')}} <a href="/settings#tariff">{{_('tariff.set_it')}}</a></p>
  % end
</section>
<section class="card" aria-labelledby="hydro-title">
  <h2 id="hydro-title">{{_('now.local')}}</h2>
  <p>{{_('now.hydro')}}: <strong id="hydro">{{fmt.kw(view.hydro_kw)}}</strong></p>
  <p>{{_('now.community')}}: <strong id="community">{{fmt.kw(view.community_kw)}}</strong></p>
  <p><a href="/community">{{_('nav.community')}} ›</a></p>
</section>
<figure class="card wide chart" data-chart="power">
  <figcaption>{{_('now.chart_caption')}}
  % known = [v for _, v in view.history if v is not None]
  % if known:
  {{_('now.chart_summary', low=fmt.power(min(known)), high=fmt.power(max(known)))}}
  % else:
  {{_('now.chart_empty')}}
  % end
  </figcaption>
  <div class="plot" id="power-plot"></div>
  <script type="application/json" id="power-data">{{!history_json}}</script>
  <details>
    <summary>{{_('chart.table')}}</summary>
    <table>
      <thead><tr><th scope="col">{{_('chart.time')}}</th><th scope="col">{{_('now.power')}}</th></tr></thead>
      <tbody>
      % for t, v in view.history[::15]:
        <tr><td>{{fmt.hhmm(t, tz)}}</td><td>{{fmt.power(v)}}</td></tr>
      % end
      </tbody>
    </table>
  </details>
</figure>
</div>
