% rebase('base.tpl')
<h1>{{_('feeds.title')}}</h1>
% if not feeds:
<p class="missing">{{_('feeds.none')}}</p>
% end
<section class="card">
<table>
  <thead><tr><th scope="col">id</th><th scope="col">{{_('feeds.name')}}</th><th scope="col">{{_('feeds.value')}}</th><th scope="col"></th></tr></thead>
  <tbody>
  % for f in feeds:
  <tr><td>{{f['id']}}</td><td>{{f['tag'] + ':' if f['tag'] else ''}}{{f['name']}}</td><td>{{'–' if f['value'] is None else f['value']}}</td>
  <td><a href="/admin/feeds/{{f['id']}}">{{_('feeds.graph')}}</a> · <a href="/admin/feeds/{{f['id']}}.csv">CSV</a> · <a href="/admin/feeds/{{f['id']}}/delete">{{_('feeds.delete')}}</a></td></tr>
  % end
  </tbody>
</table>
</section>
