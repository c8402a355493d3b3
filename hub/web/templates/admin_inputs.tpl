% rebase('base.tpl')
<h1>{{_('inputs.title')}}</h1>
% include('form_error.tpl', error=None, error_text=error)
% if not inputs:
<p class="missing">{{_('inputs.none')}}</p>
% end
% for i in inputs:
<section class="card" aria-labelledby="in-{{i['id']}}">
  <h2 id="in-{{i['id']}}">{{i['nodeid']}} / {{i['name']}}</h2>
  <p class="muted">{{_('inputs.last')}}: {{'–' if i['value'] is None else i['value']}}</p>
  <p>{{_('inputs.steps')}}: {{' → '.join(i['steps']) or _('inputs.no_steps')}}</p>
  <form method="post" action="/admin/inputs" class="stack">
    <input type="hidden" name="csrf" value="{{csrf}}">
    <input type="hidden" name="input" value="{{i['id']}}">
    <label for="fn-{{i['id']}}">{{_('inputs.process')}}</label>
    <select id="fn-{{i['id']}}" name="fn">
      % for p in processes:
      <option value="{{p.name}}">{{p.name}} – {{p.description}}</option>
      % end
    </select>
    <label for="arg-{{i['id']}}">{{_('inputs.arg')}}</label>
    <input id="arg-{{i['id']}}" name="arg" list="feed-ids">
    <label for="nf-{{i['id']}}">{{_('inputs.new_feed')}}</label>
    <input id="nf-{{i['id']}}" name="new_feed" maxlength="64">
    <div class="buttons">
      <button type="submit" class="primary">{{_('inputs.add_step')}}</button>
      <button type="submit" name="clear" value="1">{{_('inputs.clear')}}</button>
    </div>
  </form>
</section>
% end
<datalist id="feed-ids">
% for f in feeds:
<option value="{{f.id}}">{{f.name}}</option>
% end
</datalist>
