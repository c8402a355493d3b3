% rebase('base.tpl')
<h1>{{_('feeds.delete')}}: {{feed.name}}</h1>
<form method="post" action="/admin/feeds/{{feed.id}}/delete" class="card stack">
  <input type="hidden" name="csrf" value="{{csrf}}">
  % if get('error'):
  <p class="error" role="alert">{{_('feeds.confirm_wrong')}}</p>
  % end
  <p>{{_('feeds.confirm_text')}}</p>
  <label for="cn">{{_('feeds.confirm_label', name=feed.name)}}</label>
  <input id="cn" name="confirm_name" required autocomplete="off">
  <button type="submit" class="danger">{{_('feeds.delete')}}</button>
</form>
