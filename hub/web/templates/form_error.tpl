% if get('error'):
<p class="error" role="alert">{{_(error)}}</p>
% end
% if get('error_text'):
<p class="error" role="alert">{{error_text}}</p>
% end
