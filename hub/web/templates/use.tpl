% rebase('base.tpl')
<h1>{{_('use.title')}}</h1>
<nav class="segmented" aria-label="{{_('use.period')}}">
  % for k in ('day', 'week', 'month'):
  <a href="/use?period={{k}}&amp;day={{view.period.first.isoformat()}}" {{!'aria-current="true"' if k == kind else ''}}>{{_('use.' + k)}}</a>
  % end
</nav>
<nav class="pager" aria-label="{{_('use.move')}}">
  <a href="/use?period={{kind}}&amp;day={{prev}}" aria-label="{{_('use.previous')}}">‹</a>
  <span class="range">{{fmt.date_label(view.period.first, lang)}}{{'' if view.period.days == 1 else ' – ' + fmt.date_label(view.period.last, lang)}}</span>
  <a href="/use?period={{kind}}&amp;day={{next}}" aria-label="{{_('use.next')}}">›</a>
  % if not view.is_current:
  <a href="/use?period={{kind}}" class="today">{{_('use.today')}}</a>
  % end
</nav>
<div class="grid">
<section class="card" aria-labelledby="cost-title">
  <h2 id="cost-title">{{_('use.total', kwh=fmt.kwh(view.kwh))}}</h2>
  % if not view.has_power_feed:
  <p class="missing">{{_('now.no_feed')}}</p>
  % end
  % if view.cost is None:
  <p class="missing" id="no-tariff">{{_('tariff.missing')}} <a href="/settings#tariff">{{_('tariff.set_it')}}</a></p>
  % else:
  <table class="cost" id="cost">
    <thead><tr><th scope="col">{{_('tariff.band')}}</th><th scope="col">kWh</th><th scope="col">p/kWh</th><th scope="col">£</th></tr></thead>
    <tbody>
    % for r in view.cost.rows:
      <tr><th scope="row">{{r.band}}</th><td>{{f'{r.kwh:.2f}'}}</td><td>{{f'{r.price:.2f}'}}</td><td>{{fmt.money(r.pence)}}</td></tr>
    % end
      <tr><th scope="row">{{_('tariff.standing')}}</th><td></td><td>{{n_('use.days', view.cost.standing_days)}}</td><td>{{fmt.money(view.cost.standing_pence)}}</td></tr>
    </tbody>
    <tfoot><tr><th scope="row">{{_('use.total_cost')}}</th><td>{{f'{view.cost.kwh:.2f}'}}</td><td>{{'–' if view.cost.average_price is None else f'{view.cost.average_price:.2f}'}}</td><td id="total">{{fmt.money(view.cost.pence)}}</td></tr></tfoot>
  </table>
  % end
</section>
<figure class="card wide chart">
  <figcaption id="use-cap">{{_('use.caption_' + kind, n=len(view.bars))}}</figcaption>
  % include('svgbars.tpl', chart_id='use')
  <details>
    <summary>{{_('chart.table')}}</summary>
    <table id="use-table">
      <thead><tr><th scope="col">{{_('chart.time')}}</th><th scope="col">kWh</th></tr></thead>
      <tbody>
      % for b, d in zip(bars, days):
        <tr><td>
        % if d:
        <a href="/use?period=day&amp;day={{d}}">{{b.label}}</a>
        % else:
        {{b.label}}
        % end
        </td><td>{{b.value}}</td></tr>
      % end
      </tbody>
    </table>
  </details>
</figure>
</div>
