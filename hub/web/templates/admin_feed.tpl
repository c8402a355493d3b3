% rebase('base.tpl', charts=True)
<h1>{{feed.name}}</h1>
<nav class="segmented">
% for r in ranges:
<a href="/admin/feeds/{{feed.id}}?range={{r}}" {{!'aria-current="true"' if r == span else ''}}>{{_('use.' + r)}}</a>
% end
</nav>
<figure class="card wide chart" data-chart="feed">
  <figcaption>{{_('feeds.caption', count=count, low='–' if low is None else f'{low:.2f}', high='–' if high is None else f'{high:.2f}')}}</figcaption>
  <div class="plot" id="power-plot"></div>
  <script type="application/json" id="power-data">{{!data}}</script>
  <details><summary>{{_('chart.table')}}</summary>
  <table><thead><tr><th scope="col">{{_('chart.time')}}</th><th scope="col">{{_('feeds.value')}}</th></tr></thead><tbody>
  % for t, v in rows:
  <tr><td>{{fmt.hhmm(t, tz)}}</td><td>{{'–' if v is None else f'{v:.2f}'}}</td></tr>
  % end
  </tbody></table></details>
</figure>
<p><a href="/admin/feeds/{{feed.id}}.csv">CSV</a> · <a href="/admin/feeds">{{_('feeds.title')}}</a></p>
