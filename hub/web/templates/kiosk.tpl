% rebase('base.tpl', charts=True)
<h1 class="visually-hidden">{{_('kiosk.title')}}</h1>
<div class="kiosk-grid" id="kiosk" data-rotate="20">
<section class="card live {{'stale' if view.stale else ''}}" id="live" data-time="{{view.power.time or ''}}" aria-labelledby="live-title">
  <h2 id="live-title">{{_('now.power')}}</h2>
  <p class="big"><span id="live-power">{{fmt.power(view.power.value)}}</span></p>
  <p class="muted" id="live-age">{{_('now.updated_at', time=fmt.hhmm(view.power.time, tz)) if view.power.time else _('now.no_reading')}}</p>
  <p class="stale-note" id="live-stale" {{!'' if view.stale else 'hidden'}}>⚠ {{_('now.stale')}}</p>
</section>
% include('goodtime_card.tpl', card=view.card)
<section class="card" aria-labelledby="kbest">
  <h2 id="kbest">{{_('best.list')}}</h2>
  <ol class="best">
  % for w in best.windows:
    <li><strong>{{fmt.hhmm(w.start, tz)}}–{{fmt.hhmm(w.end, tz)}}</strong></li>
  % end
  </ol>
  <p>{{_('now.hydro')}}: <strong id="hydro">{{fmt.kw(view.hydro_kw)}}</strong> · {{_('now.community')}}: <strong id="community">{{fmt.kw(view.community_kw)}}</strong></p>
</section>
</div>
