"""The pages' words in Chinese (the default) and English.

Every string a person reads on a page comes from :data:`CATALOG` through an
:class:`I18n`; the stable English codes of the protocol and the API (statuses,
boards, colours, roles, reason codes) are translated here and nowhere else.
The language is ``zh-CN`` unless ``?lang=en`` chose English, which a cookie
then remembers; ``?lang=zh-CN`` switches back.
"""

from __future__ import annotations

import re
from datetime import datetime

from aiohttp import web

from protocol.rules import CHINA_TZ

DEFAULT = "zh-CN"
LANGS = ("zh-CN", "en")
COOKIE = "duban_lang"

# key -> (Chinese, English). Placeholders are str.format names.
CATALOG: dict[str, tuple[str, str]] = {
    # -- frame
    "app.name": ("13710 督办", "13710 Duban"),
    "app.tagline": ("一个平台指挥", "One platform command"),
    "nav.ledger": ("台账", "Ledger"),
    "nav.new": ("交办", "Assign"),
    "nav.tree": ("组织树", "Tree"),
    "nav.board": ("挂图作战", "Command board"),
    "nav.links": ("链路状态", "Links"),
    "nav.signout": ("退出", "Sign out"),
    "nav.lang_other": ("English", "中文"),
    "nav.menu": ("导航", "Navigation"),
    # -- what is waiting for me: the to-do, the message centre, an item's reminders
    "nav.todo": ("待办", "To do"),
    "nav.todo_count": ("{n}项待办", "{n} to do"),
    "nav.messages": ("消息", "Messages"),
    "nav.unread_count": ("{n}条未读", "{n} unread"),
    "todo.title": ("我的待办", "What is waiting for me"),
    "todo.total": ("共{n}项", "{n} in all"),
    "todo.empty": ("暂无待办事项。", "Nothing is waiting for you."),
    "todo.no_kinds": ("“{role}”角色没有待办事项。", "The role “{role}” has nothing to do here."),
    "todo.from": ("{node}交办", "from {node}"),
    "todo.since": ("{when}提交", "in {when}"),
    "todo.due": ("时限", "due"),
    "todo.more": ("另有{n}项未列出，请在台账中查看。", "{n} more not listed: see the ledger."),
    "todo.kind.deploy": ("待研究部署", "To deploy"),
    "todo.kind.pass_down": ("待转办下级", "To pass down"),
    "todo.kind.feedback": ("待首次反馈", "First feedback owed"),
    "todo.kind.redo": ("被退回待重办", "Returned: to redo"),
    "todo.kind.due_soon": ("即将到期或已逾期", "Due soon or overdue"),
    "todo.kind.plan": ("待审批方案", "Plans to approve"),
    "todo.kind.review": ("待审核办结", "Resolutions to review"),
    "todo.kind.extension": ("待审批延期申请", "Extension requests to decide"),
    "todo.kind.instruction": ("待落实领导批示", "Instructions to answer"),
    "todo.kind.urged": ("收到催办待反馈", "Urged: feedback owed"),
    "todo.kind.monthly": ("待按月反馈进展", "Monthly progress report due"),
    "messages.title": ("消息中心", "Messages"),
    "messages.unread": ("{n}条未读", "{n} unread"),
    "messages.all": ("全部", "All"),
    "messages.only_unread": ("未读", "Unread"),
    "messages.read_all": ("全部标为已读", "Mark all read"),
    "messages.mark_read": ("标为已读", "Mark read"),
    "messages.new": ("未读", "new"),
    "messages.due": ("时限 {when}", "due {when}"),
    "messages.channel_state": ("（{state}）", " ({state})"),
    "messages.empty": ("还没有消息。", "No messages yet."),
    "messages.empty_unread": ("没有未读消息。", "No unread messages."),
    "reminders.title": ("提醒记录", "Reminders sent"),
    "reminders.about": ("{deadline}{kind}", "{deadline}: {kind}"),
    "reminders.late": ("补发", "sent late"),
    "reminders.system": ("系统接口", "webhook"),
    "reminders.no_recipient": ("未送达任何人", "reached nobody"),
    "reminders.no_recipient_why": (
        "（承办单位未设负责人或联络员，或其手机号、邮箱未填写，请在人员管理中补充）",
        " (the unit has no head or operator, or no phone or email for them)"),
    "reminders.superseded": ("已由逾期提醒替代", "replaced by the overdue notice"),
    "common.node": ("节点", "Node"),
    "common.none": ("无", "none"),
    "common.yes": ("是", "yes"),
    "common.no": ("否", "no"),
    "common.unit_whole": ("（本级整体）", "(the node as a whole)"),
    "common.submit": ("提交", "Submit"),
    "common.live": ("本节点", "this node"),
    "common.never": ("从未", "never"),
    "common.unknown": ("未知", "unknown"),
    "common.ago": ("{span}前", "{span} ago"),
    "common.in": ("还剩 {span}", "{span} left"),
    "common.overdue_by": ("已逾期 {span}", "overdue by {span}"),
    "common.days": ("{n}天", "{n}d"),
    "common.hours": ("{n}小时", "{n}h"),
    "common.minutes": ("{n}分钟", "{n}min"),
    "common.seconds": ("{n}秒", "{n}s"),
    "common.just_now": ("刚刚", "just now"),
    "common.percent": ("{n}%", "{n}%"),
    "common.dash": ("—", "—"),
    # -- sign in / out
    "login.title": ("登录", "Sign in"),
    "login.name": ("用户名", "User name"),
    "login.password": ("密码", "Password"),
    "login.submit": ("登录", "Sign in"),
    "login.at": ("登录到 {node}", "Sign in to {node}"),
    "logout.title": ("退出登录", "Sign out"),
    "logout.confirm": ("确定退出登录吗？", "Sign out of this node?"),
    "logout.done": ("已退出登录。", "You have signed out."),
    "user.as": ("{name}（{role}）", "{name} ({role})"),
    # -- ledger
    "ledger.title": ("督办台账", "Supervision ledger"),
    "ledger.filters": ("筛选条件", "Filters"),
    "ledger.scope": ("范围（节点）", "Scope (node)"),
    "ledger.only_node": ("仅本节点，不含下级", "This node only, not below"),
    "ledger.board": ("板块", "Board"),
    "ledger.status": ("状态", "Status"),
    "ledger.colour": ("预警", "Warning"),
    "ledger.unit": ("责任单位", "Responsible unit"),
    "ledger.overdue": ("只看逾期", "Overdue only"),
    "ledger.q": ("关键词", "Text"),
    "ledger.sort": ("排序", "Sort"),
    "ledger.limit": ("每页", "Per page"),
    "ledger.any": ("全部", "all"),
    "ledger.apply": ("查询", "Apply"),
    "ledger.reset": ("重置", "Reset"),
    "ledger.export": ("导出 Excel", "Export to Excel"),
    "ledger.total": ("共 {n} 项", "{n} items"),
    "ledger.page": ("第 {page} / {pages} 页", "Page {page} of {pages}"),
    "ledger.prev": ("上一页", "Previous"),
    "ledger.next": ("下一页", "Next"),
    "ledger.empty": ("没有符合条件的事项。", "No item matches."),
    "ledger.as_of": ("{node} 的数据截至 {when}", "{node}'s data as of {when}"),
    "ledger.filing": (
        "刚收到的 {n} 条事件正在整理，台账稍后显示完整",
        "{n} events just received are still being filed: the ledger shows them in a moment",
    ),
    "col.colour": ("预警", "Colour"),
    "col.item": ("事项", "Item"),
    "col.board": ("板块", "Board"),
    "col.status": ("状态", "Status"),
    "col.assignee": ("承办", "Handled by"),
    "col.deadline": ("办结时限", "Resolve by"),
    "col.progress": ("进度", "Progress"),
    "sort.resolve_due": ("办结时限（近到远）", "Deadline (soonest first)"),
    "sort.-resolve_due": ("办结时限（远到近）", "Deadline (latest first)"),
    "sort.-assigned_at": ("交办时间（新到旧）", "Assigned (newest first)"),
    "sort.assigned_at": ("交办时间（旧到新）", "Assigned (oldest first)"),
    "sort.-updated_at": ("最近更新", "Recently updated"),
    "sort.progress": ("进度（低到高）", "Progress (lowest first)"),
    "sort.-progress": ("进度（高到低）", "Progress (highest first)"),
    # -- item
    "item.id": ("编号", "Number"),
    "item.fields": ("事项信息", "Item"),
    "item.description": ("具体要求", "Requirement"),
    "item.board": ("板块", "Board"),
    "item.source": ("来源", "Source"),
    "item.class": ("类别", "Class"),
    "item.calendar": ("计日方式", "Day counting"),
    "item.assigner": ("交办单位", "Assigned by"),
    "item.assignee": ("承办单位", "Handled by"),
    "item.lead_unit": ("牵头单位", "Lead unit"),
    "item.co_units": ("协同配合单位", "Co-operating units"),
    "item.parent": ("上级事项", "Parent item"),
    "item.progress": ("进度", "Progress"),
    "item.returns": ("退回次数", "Times returned"),
    "item.grade": ("评价", "Grade"),
    "item.grade_reason": ("评价说明", "Grade remark"),
    "item.points": ("积分", "Points"),
    "grade.excellent": ("优秀", "Excellent"),
    "grade.qualified": ("合格", "Qualified"),
    "grade.unqualified": ("不合格", "Unqualified"),
    "item.return_reason": ("退回理由", "Returned because"),
    "item.resolution": ("办结情况", "Resolution"),
    "item.timeline": ("时限节点", "Deadlines"),
    "item.assigned_at": ("交办", "Assigned"),
    "item.deadline.deploy": ("1天内研究部署", "Deploy within 1 day"),
    "item.deadline.feedback": ("3天内反馈办理情况", "First feedback within 3 days"),
    "item.deadline.monthly": ("按月反馈进展", "Monthly progress report"),
    "item.deadline.resolve": ("落实解决", "Resolve"),
    "item.done_on_time": ("已按时完成 {when}", "done on time {when}"),
    "item.done_late": ("逾期完成 {when}", "done late {when}"),
    "item.plan": ("解决方案和时间节点", "Plan and milestones"),
    "item.plan.none": ("尚未提交方案。", "No plan submitted."),
    "item.plan.status": ("方案状态", "Plan status"),
    "item.plan.note": ("说明", "Note"),
    "item.milestone": ("节点", "Milestone"),
    "item.milestone.due": ("时间", "Due"),
    "item.milestone.reached": ("已完成", "reached"),
    "item.milestone.pending": ("未完成", "pending"),
    "item.milestone.final": ("最终办结", "final: resolved"),
    "item.history": ("办理记录", "History"),
    "item.verified": ("签名已验证", "signature verified"),
    "item.not_verified": ("签名验证失败：{reason}", "signature NOT verified: {reason}"),
    "item.all_verified": ("全部 {n} 条记录的签名均已验证", "all {n} records' signatures verified"),
    "item.some_unverified": ("有记录签名未通过验证", "some records failed verification"),
    "item.signed_by": ("签名：{node}（密钥 {key}）", "signed by {node} (key {key})"),
    "item.batch_signed": ("批量签名", "batch-signed"),
    "item.received": ("经 {via} 收到于 {when}", "received via {via} at {when}"),
    "item.attachments": ("附件", "Attachments"),
    "item.attachment_elsewhere": (
        "（文件保存在办理节点）",
        "(the file stays at the handling node)",
    ),
    "item.file_receiving": ("正在上传（已到 {percent}%）", "uploading ({percent}% arrived)"),
    "item.file_waiting": ("等待下级上传", "waiting for the lower level to upload"),
    "item.file_open": ("打开", "open"),
    "item.file_full_size": ("点击查看原图", "open full size"),
    "item.file_open_pdf": ("打开 PDF：{name}", "Open the PDF: {name}"),
    "item.file_download": ("下载", "download"),
    "item.evidence.hint": ("请对照下列材料审核（点击图片查看原图）：",
                           "Review against this evidence (click an image for full size):"),
    "item.evidence.resolution": ("办结报告", "Resolution"),
    "item.evidence.feedback": ("最近一次反馈", "Latest feedback"),
    "item.evidence.no_files": ("未附文件", "no files attached"),
    # -- uploads (item_upload.html and static/upload.js)
    "upload.limits": (
        "每个文件不超过 {per_file}，最多 {count} 个，合计不超过 {together}。",
        "Each file at most {per_file}; at most {count} files, {together} in all.",
    ),
    "upload.choose_again": (
        "本次提交未保存。填写的文字都还在，但浏览器不会保留已选的文件，请重新选择：",
        "Nothing was saved. Your text is kept, but browsers do not keep chosen files: "
        "choose again",
    ),
    "upload.was_too_big": ("（超过 {per_file}）", " (over {per_file})"),
    "upload.progress": (
        "正在上传 {percent}%（约剩 {left}）", "Uploading {percent}% (about {left} left)"
    ),
    "upload.progress_start": ("正在上传 {percent}%", "Uploading {percent}%"),
    "upload.saving": ("已上传，正在保存…", "Uploaded, saving…"),
    "upload.too_big": (
        "“{name}”有 {size}，超过每个文件 {limit} 的上限，未上传。请换一个较小的文件；"
        "填写的内容都还在。",
        "“{name}” is {size}, over the limit of {limit} per file: nothing was sent. "
        "Choose a smaller file; everything you typed is kept.",
    ),
    "upload.too_many": (
        "一次最多 {count} 个文件，未上传；填写的内容都还在。",
        "At most {count} files at once: nothing was sent; everything you typed is kept.",
    ),
    "upload.too_much": (
        "所选文件合计 {size}，超过每次 {limit} 的上限，未上传；填写的内容都还在。",
        "The files come to {size}, over the limit of {limit} at once: nothing was sent; "
        "everything you typed is kept.",
    ),
    "upload.network": (
        "网络中断，未能提交。填写的内容和所选文件都还在，请稍后再试。",
        "The connection failed: nothing was saved. Your text and files are kept; "
        "try again later.",
    ),
    "upload.refused": (
        "未能提交：{why} 填写的内容和所选文件都还在。",
        "Not saved: {why} Your text and files are kept.",
    ),
    "upload.server_error": (
        "服务器出错（{status}），未能提交。填写的内容和所选文件都还在，请稍后再试。",
        "The server failed ({status}): nothing was saved. Your text and files are kept; "
        "try again later.",
    ),
    "upload.seconds": ("{n} 秒", "{n} s"),
    "upload.minutes": ("{n} 分钟", "{n} min"),
    "item.sub_items": ("分解子事项", "Sub-items"),
    "item.rollup": (
        "{done}/{count} 项已办结，平均进度 {progress}%",
        "{done} of {count} done, average progress {progress}%",
    ),
    "item.actions": ("办理", "Act"),
    "item.no_actions": (
        "您当前没有可办理的操作。",
        "There is nothing for you to do on this item now.",
    ),
    "item.mirror": ("{node}的办理数据最近收到于{when}", "{node}'s data last heard {when}"),
    "item.mirror_never": ("尚未收到{node}的办理数据", "Nothing received from {node} yet"),
    "item.done": ("操作已完成：{action}", "Done: {action}"),
    # -- action forms
    "act.deploy": ("研究部署", "Deploy"),
    "act.feedback": ("反馈办理情况", "Report progress"),
    "act.monthly_report": ("按月反馈进展", "Monthly progress report"),
    "act.monthly_report.text": ("本月进展情况", "Progress this month"),
    "act.monthly_report.due": ("方案已批准，须按月反馈进展；本次应于{due}前反馈。",
                               "Under the approved plan, progress is reported monthly; "
                               "this one is due by {due}."),
    "item.monthly": ("【月度进展】", "[Monthly]"),
    "act.plan": ("提交解决方案", "Submit a plan"),
    "act.approve": ("批准方案", "Approve the plan"),
    "act.reject": ("不批准方案", "Reject the plan"),
    "act.resolve": ("落实解决（申请办结）", "Resolve (ask to close)"),
    "act.review": ("审核", "Review"),
    "act.accept": ("审核通过", "Accept"),
    "act.return": ("退回重办", "Return"),
    "act.close": ("销号", "Close"),
    "act.withdraw": ("撤回事项", "Withdraw"),
    "act.decide": ("审批方案", "Decide on the plan"),
    "act.plan.hint": (
        "每行一个时间节点；最后一个节点即办结时限。",
        "One milestone a row; the last one becomes the resolve deadline.",
    ),
    "act.milestone_none": ("（不对应节点）", "(no milestone)"),
    # -- new item
    "new.title": ("交办事项", "Assign an item"),
    "new.submit": ("交办", "Assign"),
    "new.assignee_units": ("本级单位", "Units of this node"),
    "new.assignee_nodes": ("下级政府", "Governments below"),
    "new.choose": ("请选择", "Choose"),
    "new.co_units_hint": ("多个单位用逗号分隔", "Separate several units with commas"),
    "new.deadline_hint": ("类别为“明确时限”时填写", "Only for the class 'explicit deadline'"),
    "new.nothing": ("您的角色不能交办事项。", "Your role cannot assign items."),
    # -- pass down (decompose.html)
    "decompose.title": ("转办 / 任务分解", "Pass down / decompose"),
    "decompose.link": ("转办 / 任务分解", "Pass down / decompose"),
    "decompose.back": ("返回事项", "Back to the item"),
    "decompose.own_deadline": ("本事项办结时限：{when}", "This item is due {when}"),
    "decompose.add": ("添加分项", "Add parts"),
    "decompose.all_children": ("全部下级", "All children"),
    "decompose.all_units": ("全部部门", "All departments"),
    "decompose.one": ("单个承办对象", "One recipient"),
    "decompose.add_one": ("添加", "Add"),
    "decompose.part": ("第{n}项", "Part {n}"),
    "decompose.to_child": ("下级政府", "government below"),
    "decompose.to_unit": ("本级部门", "department here"),
    "decompose.deadline_hint": (
        "不晚于 {day}；留空则与本事项相同", "by {day} at the latest; empty: the item's own"
    ),
    "decompose.no_list": (
        "尚未收到该节点的单位名单，可填写单位代码",
        "Its unit list has not reached us yet: type a unit code",
    ),
    "decompose.remove": ("删除此项", "Remove this part"),
    "decompose.empty": (
        "还没有分项：用上面的按钮添加。", "No parts yet: add them with the buttons above."
    ),
    "decompose.submit": ("确认转办（{n}项）", "Pass down ({n} parts)"),
    "decompose.errors": ("有 {n} 处需要修改，已在对应位置标出。",
                         "{n} fields need changing; each is marked below."),
    "decompose.none": ("请至少添加一个分项。", "Add at least one part."),
    "decompose.too_many": ("一次最多 {n} 个分项。", "At most {n} parts at once."),
    "new.cascade_hint": (
        "选择下级层级后，各级逐级转办，每级签发并审核本级转出的子事项",
        "Chosen a level below, each level passes the item on and signs and reviews its own "
        "sub-items",
    ),
    "new.cascade_self": ("本级（不逐级下达）", "This level only (no cascade)"),
    # -- the cascade and the roll-up (docs/cascade.md)
    "cascade.to.city": ("所有市级", "every city"),
    "cascade.to.county": ("所有县级", "every county"),
    "cascade.to.township": ("所有乡镇", "every township"),
    "cascade.to_other": ("所有{level}", "every {level}"),
    "cascade.goes_to": ("本事项逐级下达到：{to}", "This item goes down to {to}"),
    "cascade.waiting": (
        "尚未向下级转办：本节点的自动转办已关闭，请由督查室或领导转办。",
        "Not passed down yet: automatic passing down is off at this node; a supervisor or "
        "leader passes it down.",
    ),
    "cascade.waiting_auto": ("正在自动向下级转办……", "Being passed down automatically…"),
    "cascade.pass_down": ("向下级转办（全部下级）", "Pass down (to every child)"),
    "cascade.passed": ("已转办至{n}个下级单位。", "Passed down to {n} children."),
    "cascade.handles": (
        "本级即为下达层级，由本级办理。", "This is the level it goes to: handled here."
    ),
    "act.pass_down": ("向下级转办", "Pass down"),
    "rollup.title": ("逐级汇总", "Roll-up"),
    "rollup.level_line": (
        "{count}个{level}：{feedback}个已反馈，{late}个逾期，{red}个红灯",
        "{count} {level}: {feedback} feedback in, {late} late, {red} red",
    ),
    "rollup.own": ("本事项（签名）进度", "This item's own (signed) progress"),
    "rollup.rolled": ("下级汇总进度", "Rolled up from below"),
    "rollup.rule": (
        "汇总规则：进度为各直接子事项汇总进度的平均值（无下级子事项的按其反馈进度，已办结计100%，"
        "已撤回不计）；颜色取整个子树中最差的颜色。汇总不改变本事项的签名状态。",
        "Rule: progress is the mean of the direct sub-items' rolled-up progress (a sub-item "
        "without sub-items counts its reported progress, 100% once resolved; withdrawn ones "
        "are left out); the colour is the worst in the whole subtree. The roll-up never "
        "changes this item's signed state.",
    ),
    "rollup.children": ("直接下级", "Direct sub-items"),
    "rollup.leaves": (
        "{count}个末级：{feedback}个已反馈，{late}个逾期，{red}个红灯",
        "{count} at the bottom: {feedback} feedback in, {late} late, {red} red",
    ),
    "rollup.slowest": ("进度最慢", "Slowest"),
    "rollup.overdue": ("逾期（红灯，共{n}个）", "Overdue (red, {n} in all)"),
    "rollup.rolled_col": ("汇总", "Rolled up"),
    "rollup.resolution": (
        "下级办理情况汇总：{lines}；汇总进度{progress}%。",
        "From the levels below: {lines}; rolled-up progress {progress}%.",
    ),
    # -- tree
    "tree.title": ("组织树", "Tree"),
    "tree.open": ("在办", "Open"),
    "tree.overdue": ("逾期", "Overdue"),
    "tree.closed": ("已办结", "Done"),
    "tree.heard": ("最近收到事件", "last event received"),
    "tree.synced": ("同步于", "synced"),
    "tree.link": ("链路", "Link"),
    "tree.pending": ("待同步 {n}", "{n} waiting"),
    "tree.error": ("错误：{error}", "error: {error}"),
    "tree.hint": (
        "数字为该节点及其全部下级的合计；点击名称逐级查看。",
        "Counts cover the node and everything below it; click a name to drill down.",
    ),
    "tree.up": ("上一级", "Up"),
    "tree.nodes": ("共 {n} 个节点", "{n} nodes"),
    # -- board
    "board.title": ("挂图作战", "Command board"),
    "board.period": (
        "统计周期：{label}（按办结时限落在本季度的事项）",
        "Period: {label} (items whose resolve deadline falls in it)",
    ),
    "board.quarter": ("季度", "Quarter"),
    "board.kpi.items": ("本季度到期事项", "Due this quarter"),
    "board.kpi.done": ("已办结", "Done"),
    "board.kpi.completion": ("办结率", "Completion rate"),
    "board.kpi.on_time": ("按时办结率", "On-time rate"),
    "board.kpi.open": ("全部在办", "Open now"),
    "board.kpi.overdue": ("当前逾期", "Overdue now"),
    "board.by_node": ("各地办结率与按时办结率", "Completion and on-time rates by node"),
    "board.by_board": ("各板块办结率与按时办结率", "Completion and on-time rates by board"),
    "board.overdue_by_unit": ("逾期事项（按责任单位）", "Overdue items by responsible unit"),
    "board.ranking": ("本季度排名", "This quarter's ranking"),
    "board.trend": ("近 {n} 周趋势", "The last {n} weeks"),
    "board.trend.assigned": ("新交办", "assigned"),
    "board.trend.done": ("办结", "done"),
    "board.trend.overdue_done": ("逾期办结", "done late"),
    "board.series.completion": ("办结率", "completion"),
    "board.series.on_time": ("按时办结率", "on time"),
    "board.own": ("本级", "own units"),
    "board.rank": ("名次", "Rank"),
    "board.rank.node": ("地区", "Node"),
    "board.rank.unit": ("单位", "Unit"),
    "board.rank.nodes": ("各地", "Nodes"),
    "board.rank.units": ("各单位", "Units"),
    "board.rank.items": ("事项数", "Items"),
    "board.rank.score": ("激励积分", "Points"),
    "board.rank.gained": ("加分", "Gained"),
    "board.rank.deducted": ("扣分", "Deducted"),
    "board.rank.running": ("季度进行中，截至今日", "quarter still running, as of today"),
    "board.rank.rule": (
        "按督查激励积分排名：按时部署、按时反馈、按时办结加分；逾期、被退回、季度末未完成扣分。",
        "Ranked by incentive points: on-time deploy, feedback and resolution gain; "
        "lateness, returns and unfinished items at the quarter's end lose.",
    ),
    "board.no_data": ("暂无数据", "no data yet"),
    "board.rank.pending": (
        "排名正在计算：还有 {n} 个事项待计分，请稍后刷新。",
        "The ranking is being worked out: {n} items still to score. Refresh in a moment.",
    ),
    "board.none_overdue": ("没有逾期事项。", "Nothing is overdue."),
    # -- links
    "links.title": ("链路状态", "Link status"),
    "links.link": ("链路", "Link"),
    "links.peer": ("对端", "Peer"),
    "links.direction.up": ("上行（上级）", "up (parent)"),
    "links.direction.down": ("下行（下级）", "down (child)"),
    "links.pending": ("待发送", "Waiting to send"),
    "links.oldest": ("最早待发送", "Oldest waiting"),
    "links.peer_pending": ("对端待发送", "Waiting at the peer"),
    "links.contact": ("最近联系", "Last contact"),
    "links.failures": ("连续失败", "Failures"),
    "links.error": ("最近错误", "Last error"),
    "links.ok": ("正常", "ok"),
    "links.files": ("向上级传送的附件", "Files going up"),
    "links.files_waiting": ("待传送 {n} 个文件（{kb} KB）", "{n} files waiting ({kb} KB)"),
    "links.file": ("文件", "File"),
    "links.none": ("本节点没有上下级链路。", "This node has no links."),
    "links.counts": (
        "事件 {events} 条，事项 {items} 项，拒收 {refused} 条，本节点序号 {seq}",
        "{events} events, {items} items, {refused} refused, own sequence {seq}",
    ),
    # -- errors
    "error.title": ("出错了", "Something went wrong"),
    "error.back": ("返回台账", "Back to the ledger"),
    "error.form": ("未能提交：", "Not done: "),
    "error.detail": ("技术信息：{detail}", "Details: {detail}"),
    "reason.missing_field": ("请填写“{field}”。", "Fill in “{field}”."),
    "reason.bad_field": ("“{field}”填写不正确。", "“{field}” is not valid."),
    "reason.unknown_field": ("“{field}”不是可用的字段。", "“{field}” is not a known field."),
    "reason.unknown_board": ("“{field}”不是已知板块。", "“{field}”: unknown board."),
    "reason.unknown_source": ("“{field}”不是已知来源。", "“{field}”: unknown source."),
    "reason.unknown_assignee": (
        "“{field}”：既不是本级单位，也不是已知的下级。",
        "“{field}”: neither a unit here nor a known node.",
    ),
    "reason.unknown_unit": ("“{field}”：本节点没有这个单位。", "“{field}”: no such unit here."),
    "reason.deadline_after_parent": (
        "“{field}”不能晚于本事项的办结时限。",
        "“{field}” may not be later than this item's own deadline.",
    ),
    "reason.too_large": ("“{field}”太大。", "“{field}” is too large."),
    "reason.too_many_files": ("“{field}”：文件太多。", "“{field}”: too many files."),
    "reason.quota_exceeded": (
        "您上传的附件已达到个人存储上限，无法再保存新附件。请联系本级管理员。",
        "Attachments: your uploads have reached your storage quota; ask this node's "
        "administrator.",
    ),
    "reason.node_quota_exceeded": (
        "本节点的附件存储已满，无法再保存新附件。请联系本级管理员。",
        "Attachments: this node's storage for attachments is full; ask its administrator.",
    ),
    "reason.storage_full": (
        "服务器磁盘已满，本次提交未能保存。请稍后（{wait} 秒后）再试，并告知本级管理员。",
        "The server's disk is full: this was not saved. Try again later (in {wait} "
        "seconds) and tell this node's administrator.",
    ),
    "reason.unsupported_media_type": (
        "请求内容的格式不受支持。",
        "The request's content type is not accepted here.",
    ),
    "reason.invalid_utf8": ("“{field}”不是有效的文字。", "“{field}” is not valid text."),
    "reason.bad_multipart": (
        "表单数据无法读取，请重新提交。",
        "The form could not be read; send it again.",
    ),
    "reason.unknown_item": ("本节点没有这个事项。", "No such item is held here."),
    "reason.unknown_node": ("未知的节点。", "Unknown node."),
    "reason.not_in_scope": (
        "该事项或节点不在本节点的管辖范围内。",
        "That item or node is outside this node's scope.",
    ),
    "reason.not_ancestor": (
        "只能向下级或本级单位交办。",
        "Items are assigned only to nodes below or to units here.",
    ),
    "reason.not_assigner": ("只有交办单位可以进行此操作。", "Only the assigning node may do this."),
    "reason.not_assignee": ("只有承办单位可以进行此操作。", "Only the handling node may do this."),
    "reason.role_forbidden": ("您的角色不能进行此操作。", "Your role may not do this."),
    "reason.wrong_unit": ("只能办理本单位的事项。", "You act for your own unit's items only."),
    "reason.invalid_transition": (
        "事项当前状态下不能进行此操作。",
        "The item's state does not allow this now.",
    ),
    "reason.item_closed": ("事项已销号。", "The item is closed."),
    "reason.item_withdrawn": ("事项已撤回。", "The item was withdrawn."),
    "reason.bad_cascade": (
        "“{field}”：只能选择本级以下、且不高于承办单位的层级。",
        "“{field}”: choose a level below this node's, and not above the assignee's.",
    ),
    "reason.not_cascade": ("本事项不是逐级下达事项。", "This item does not cascade."),
    "reason.wrong_level": (
        "本级即为下达层级（或更低），由本级办理，不再向下转办。",
        "This node is at (or below) the level the item goes to: it handles the item itself.",
    ),
    "reason.no_children": (
        "本节点还没有该层级的下级单位。", "This node has no child at that level yet."
    ),
    "reason.already_passed_down": ("本事项已向下级转办。", "This item was passed down already."),
    "reason.bad_credentials": ("用户名或密码错误。", "Wrong name or password."),
    "reason.too_many_attempts": (
        "登录失败次数过多，请 {wait} 秒后再试。",
        "Too many failed sign-ins; wait {wait} seconds.",
    ),
    "reason.auth_required": ("请先登录。", "Please sign in."),
    "reason.session_expired": ("登录已过期，请重新登录。", "Your session expired; sign in again."),
    "reason.account_disabled": ("账号已停用。", "This account is disabled."),
    "reason.csrf_failed": (
        "表单已失效或来源不明，请刷新页面后重试。",
        "The form expired or came from elsewhere; reload the page and try again.",
    ),
    "reason.not_found": ("页面不存在。", "No such page."),
    "reason.unknown_action": ("没有这个操作。", "No such action."),
    "reason.calendar_uncovered": (
        "节假日表不覆盖该日期。",
        "The holiday table does not cover that date.",
    ),
    "reason.internal": ("服务器出错，错误已记录。", "The server failed; the error is logged."),
    "reason.other": ("操作未完成（{reason}）。", "Not done ({reason})."),
    # Urges, instructions, extensions (issue 18)
    "item.instructions": ("领导批示", "Leaders' instructions"),
    "item.instruction.answered": ("已反馈落实情况（{n}次）", "answered ({n})"),
    "item.instruction.waiting": ("待反馈落实情况", "awaiting an answer"),
    "item.urges": ("催办", "Urged"),
    "ledger.urged": ("已催办{n}次", "urged {n}×"),
    "item.urges.summary": (
        "已催办 {n} 次，最近一次 {when}，{who}（{node}）",
        "{n} times; last {when} by {who} ({node})",
    ),
    "item.extension": ("延期申请", "Extension request"),
    "item.extension.pending": (
        "申请延期至 {deadline}（原时限 {old}），待交办单位审批",
        "asked to move the deadline to {deadline} (now {old}); awaiting a decision",
    ),
    "item.extension.pending_status": ("待审批", "pending"),
    "item.extension.approved": ("同意延期", "approved"),
    "item.extension.refused": ("不同意延期", "refused"),
    "item.ext.to": ("申请延期至 {when}", "asked until {when}"),
    "item.tl.urge": ("催办：{who}（{node}）", "Urged by {who} ({node})"),
    "item.tl.extension": ("延期申请", "Extension request"),
    "item.tl.extension.asked": ("时限 {old} → {new}", "deadline {old} → {new}"),
    "act.urge": ("催办", "Urge"),
    "act.urge.text": ("催办意见", "What is wanted"),
    "act.instruct": ("领导批示", "Leader's instruction"),
    "act.instruct.text": ("批示内容", "Instruction"),
    "act.request_extension": ("申请延期", "Ask for an extension"),
    "act.request_extension.hint": (
        "须在办结时限（{due}）前申请；交办单位同意后时限顺延。",
        "Ask before the deadline ({due}); it moves once the assigner approves.",
    ),
    "act.request_extension.text": ("申请理由", "Why"),
    "act.request_extension.deadline": ("申请延期至", "New deadline"),
    "act.request_extension.progress": ("目前进展", "Done so far"),
    "act.decide_extension": ("审批延期申请", "Decide the extension request"),
    "act.decide_extension.text": ("审批意见（不同意时必填）", "Remark (required to refuse)"),
    "act.review.grade": ("评价", "Grade"),
    "act.review.grade_hint": ("按规则默认：{grade}；改为其他评价须填写理由。",
                              "The rules give {grade}; another grade needs a reason."),
    "act.review.reason": ("审核意见（退回或改变默认评价时必填）",
                          "Remark (required to return, or to change the default grade)"),
    "act.extension.approve": ("同意延期", "Approve"),
    "act.extension.refuse": ("不同意", "Refuse"),
    "act.answers_none": ("（不对应批示）", "(answers no instruction)"),
    "reason.not_supervisor": (
        "只有交办单位或其上级单位可以催办、批示。",
        "Only the assigning node or a node above it may urge or instruct.",
    ),
    "reason.extension_too_late": (
        "已过办结时限，不能再申请延期，请尽快办理。",
        "The deadline has passed: an extension is asked before it. Act at once.",
    ),
    "reason.grade_needs_reason": (
        "所选评价与按规则默认的评价不同，请填写理由。",
        "The grade differs from the rules' default: give a reason.",
    ),
    "reason.deadline_by_extension": (
        "办结时限只能通过延期申请、经交办单位同意后调整。",
        "A deadline moves only by an extension request the assigner approves.",
    ),
}

STATUS = {
    "assigned": ("已交办", "Assigned"),
    "deployed": ("已部署", "Deployed"),
    "reporting": ("办理中", "In progress"),
    "planned": ("按计划推进", "On an approved plan"),
    "resolved": ("待审核", "Awaiting review"),
    "returned": ("已退回", "Returned"),
    "accepted": ("已通过", "Accepted"),
    "closed": ("已销号", "Closed"),
    "withdrawn": ("已撤回", "Withdrawn"),
}
COLOUR = {
    "green": ("绿灯：正常", "Green: on track"),
    "yellow": ("黄灯：临期", "Yellow: due soon"),
    "red": ("红灯：逾期", "Red: overdue"),
    "grey": ("已结束", "Finished"),
}
COLOUR_SHORT = {
    "green": ("绿", "green"),
    "yellow": ("黄", "yellow"),
    "red": ("红", "red"),
    "grey": ("灰", "grey"),
}
NODE_COLOUR = {
    "green": ("正常", "on track"),
    "yellow": ("临期", "due soon"),
    "red": ("逾期", "overdue"),
    "grey": ("无在办", "nothing open"),
}
BOARD = {
    "daily": ("日常管理事项", "Daily management"),
    "key_task": ("重点工作任务", "Key work tasks"),
    "reform": ("重大改革事项", "Major reforms"),
    "engineering": ("重点工程项目", "Key engineering projects"),
    "tech_upgrade": ("重点技改项目", "Key technical upgrades"),
    "investment": ("重点招商项目", "Key investment projects"),
}
SOURCE = {
    "plenary": ("政府全体会议", "Plenary meeting"),
    "executive": ("常务会议", "Executive meeting"),
    "office": ("政府办公会议", "Office meeting"),
    "topical": ("专题会议", "Topical meeting"),
    "instruction": ("领导批示", "Leader's instruction"),
    "other": ("其他", "Other"),
}
CLASS = {
    "general": ("一般性问题（7天）", "General (7 days)"),
    "major": ("重大复杂问题（1个月）", "Major or complex (1 month)"),
    "explicit": ("明确时限", "Explicit deadline"),
}
CALENDAR = {
    "natural": ("自然日", "Natural days"),
    "working": ("工作日", "Working days"),
}
ROLE = {
    "leader": ("领导", "leader"),
    "supervisor": ("督查室", "supervision office"),
    "unit_head": ("单位负责人", "unit head"),
    "operator": ("联络员", "operator"),
    "viewer": ("查阅", "viewer"),
}
LEVEL = {
    "province": ("省", "province"),
    "city": ("市", "city"),
    "county": ("县", "county"),
    "township": ("乡镇", "township"),
}
PLAN_STATUS = {
    "submitted": ("待审批", "awaiting a decision"),
    "approved": ("已批准", "approved"),
    "rejected": ("未批准", "rejected"),
}
EVENT = {
    "item.assigned": ("交办", "Assigned"),
    "item.updated": ("修改", "Updated"),
    "item.withdrawn": ("撤回", "Withdrawn"),
    "item.deployed": ("研究部署", "Deployed"),
    "item.feedback": ("反馈办理情况", "Feedback"),
    "item.plan_submitted": ("提交方案", "Plan submitted"),
    "item.plan_decided": ("审批方案", "Plan decided"),
    "item.resolved": ("申请办结", "Resolved"),
    "item.reviewed": ("审核", "Reviewed"),
    "item.closed": ("销号", "Closed"),
    "item.urged": ("催办", "Urged"),
    "item.instructed": ("领导批示", "Instruction"),
    "item.extension_requested": ("申请延期", "Extension requested"),
    "item.extension_decided": ("审批延期", "Extension decided"),
}
OUTCOME = {"accept": ("通过", "accepted"), "return": ("退回", "returned")}
CHANNEL = {
    "sms": ("短信", "SMS"),
    "email": ("邮件", "email"),
    "webhook": ("接口推送", "webhook"),
}
DELIVERY = {
    "pending": ("发送中", "sending"),
    "sent": ("已送达", "delivered"),
    "failed": ("发送失败", "failed"),
    "cancelled": ("已取消", "cancelled"),
}
DEADLINE = {
    "deploy": ("研究部署", "Deploy"),
    "feedback": ("首次反馈", "First feedback"),
    "resolve": ("办结", "Resolve"),
    "milestone": ("方案节点", "Plan milestone"),
    "monthly": ("按月反馈进展", "Monthly progress report"),
}
REMINDER_KIND = {
    "due_soon": ("即将到期提醒", "due soon"),
    "overdue": ("逾期提醒", "overdue"),
    # Notices (node/reminders/schedule.py NOTICES): their deadline and kind are the act.
    "urge": ("催办通知", "Urge notice"),
    "instruction": ("领导批示通知", "Instruction notice"),
}
FIELD = {
    "title": ("事项名称", "Title"),
    "description": ("具体要求", "Requirement"),
    "assignee": ("承办单位", "Handled by"),
    "board": ("板块", "Board"),
    "source": ("来源", "Source"),
    "class": ("类别", "Class"),
    "calendar": ("计日方式", "Day counting"),
    "deadline": ("办结时限", "Deadline"),
    "lead_unit": ("牵头单位", "Lead unit"),
    "co_units": ("协同配合单位", "Co-operating units"),
    "cascade": ("下达到", "Send down to"),
    "note": ("说明", "Note"),
    "text": ("办理情况", "Report"),
    "progress": ("进度（%）", "Progress (%)"),
    "milestone": ("对应节点", "Milestone"),
    "milestones": ("时间节点", "Milestones"),
    "reason": ("理由", "Reason"),
    "outcome": ("审核结果", "Outcome"),
    "attachments": ("附件", "Attachments"),
    "answers": ("落实批示情况", "Answers the instruction"),
    "approve": ("审批结果", "Decision"),
    "name": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "scope": ("范围", "Scope"),
    "status": ("状态", "Status"),
    "colour": ("预警", "Warning"),
    "unit": ("责任单位", "Responsible unit"),
    "overdue": ("只看逾期", "Overdue only"),
    "q": ("关键词", "Text"),
    "sort": ("排序", "Sort"),
    "limit": ("每页", "Per page"),
    "offset": ("页码", "Page"),
    "body": ("表单", "Form"),
    "quarter": ("季度", "Quarter"),
    "node": ("节点", "Node"),
}
_MILESTONE_FIELD = re.compile(r"milestones\[(\d+)\]\.(title|due)\Z")


def choose(request: web.Request) -> tuple[str, bool]:
    """(language, whether to remember it in the cookie)."""
    asked = request.query.get("lang")
    if asked in LANGS:
        return asked, request.cookies.get(COOKIE) != asked
    stored = request.cookies.get(COOKIE)
    return (stored if stored in LANGS else DEFAULT), False


class I18n:
    """The words of one page in one language."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGS else DEFAULT
        self._i = LANGS.index(self.lang)

    @property
    def html_lang(self) -> str:
        return self.lang

    def __call__(self, message: str, /, **values: object) -> str:
        text = CATALOG[message][self._i]
        return text.format(**values) if values else text

    def _table(self, table: dict[str, tuple[str, str]], code: str | None) -> str:
        if code is None:
            return ""
        pair = table.get(code)
        return pair[self._i] if pair else code

    def status(self, code: str | None) -> str:
        return self._table(STATUS, code)

    def colour(self, code: str | None) -> str:
        return self._table(COLOUR, code)

    def colour_short(self, code: str | None) -> str:
        return self._table(COLOUR_SHORT, code)

    def node_colour(self, code: str | None) -> str:
        return self._table(NODE_COLOUR, code)

    def board(self, code: str | None) -> str:
        return self._table(BOARD, code)

    def source(self, code: str | None) -> str:
        return self._table(SOURCE, code)

    def item_class(self, code: str | None) -> str:
        return self._table(CLASS, code)

    def calendar(self, code: str | None) -> str:
        return self._table(CALENDAR, code)

    def role(self, code: str | None) -> str:
        return self._table(ROLE, code)

    def level(self, code: str | None) -> str:
        return self._table(LEVEL, code)

    def plan_status(self, code: str | None) -> str:
        return self._table(PLAN_STATUS, code)

    def event(self, code: str | None) -> str:
        return self._table(EVENT, code)

    def outcome(self, code: str | None) -> str:
        return self._table(OUTCOME, code)

    def channel(self, code: str | None) -> str:
        return self._table(CHANNEL, code)

    def delivery(self, code: str | None) -> str:
        return self._table(DELIVERY, code)

    def deadline_name(self, code: str | None) -> str:
        return self._table(DEADLINE, code)

    def reminder_kind(self, code: str | None) -> str:
        return self._table(REMINDER_KIND, code)

    def field(self, name: str | None) -> str:
        if not name:
            return self._table(FIELD, "body")
        match = _MILESTONE_FIELD.match(name)
        if match:
            index, part = int(match[1]) + 1, match[2]
            what = FIELD["title" if part == "title" else "milestone"][self._i]
            due = ("时间", "due")[self._i] if part == "due" else what
            return (f"第{index}个时间节点的{due}", f"milestone {index}: {due}")[self._i]
        base = name.split("[", 1)[0]
        return self._table(FIELD, base)

    def error(self, reason: str, field: str | None = None, **values: object) -> str:
        """A refusal's reason code as a sentence naming the field."""
        key = f"reason.{reason}"
        if key not in CATALOG:
            return self("reason.other", reason=reason)
        values.setdefault("wait", "")
        return self(key, field=self.field(field), **values)

    # -- times

    def when(self, ms: int | None) -> str:
        """A moment in China time, as offices write it."""
        if ms is None:
            return self("common.dash")
        moment = datetime.fromtimestamp(ms / 1000, CHINA_TZ)
        if self.lang == "en":
            return moment.strftime("%Y-%m-%d %H:%M")
        return f"{moment.year}年{moment.month}月{moment.day}日 {moment:%H:%M}"

    def day(self, ms: int | None) -> str:
        if ms is None:
            return self("common.dash")
        moment = datetime.fromtimestamp(ms / 1000, CHINA_TZ)
        if self.lang == "en":
            return moment.strftime("%Y-%m-%d")
        return f"{moment.year}年{moment.month}月{moment.day}日"

    def span(self, ms: int) -> str:
        """A duration, the two largest units: 2天3小时 / 2d 3h."""
        seconds = abs(ms) // 1000
        days, rest = divmod(seconds, 86400)
        hours, rest = divmod(rest, 3600)
        minutes = rest // 60
        parts = []
        if days:
            parts.append(self("common.days", n=days))
        if hours and len(parts) < 2:
            parts.append(self("common.hours", n=hours))
        if minutes and len(parts) < 2 and not days:
            parts.append(self("common.minutes", n=minutes))
        if not parts:
            parts.append(self("common.seconds", n=seconds))
        return ("" if self.lang == "zh-CN" else " ").join(parts)

    def countdown(self, due: int | None, now: int) -> str:
        if due is None:
            return ""
        if due >= now:
            return self("common.in", span=self.span(due - now))
        return self("common.overdue_by", span=self.span(now - due))

    def ago(self, ms: int | None, now: int) -> str:
        if ms is None:
            return self("common.never")
        if now - ms < 5000:
            return self("common.just_now")
        return self("common.ago", span=self.span(now - ms))
