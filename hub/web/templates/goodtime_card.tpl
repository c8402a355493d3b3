<section class="card goodtime light-{{card.light}}" aria-labelledby="gt-title" id="goodtime">
  <h2 id="gt-title">{{_('card.title')}}</h2>
  <div class="lamps" aria-hidden="true">
    % for lamp in ('red', 'amber', 'green'):
    <span class="lamp lamp-{{lamp}} {{'lit' if card.light == lamp else ''}}">{{card.icon if card.light == lamp else ''}}</span>
    % end
  </div>
  <div class="gt-text" aria-live="polite">
    <p class="gt-head" id="gt-head"><span class="gt-icon" aria-hidden="true">{{card.icon}}</span> {{_('card.' + card.light)}}</p>
    <p id="gt-detail">
    % if card.score is not None:
      {{_('card.score', score=f'{card.score:.0f}')}}
    % end
    % if card.until:
      {{_('card.until', time=fmt.hhmm(card.until, tz))}}
    % end
    % if card.next_green:
      {{_('card.next_green', time=fmt.hhmm(card.next_green, tz))}}
    % end
    </p>
  </div>
</section>
